package gateway

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// serveCall answers the call whose head, the first n bytes of c.br, is
// parsed in c.req; false when the connection is to be closed.
func (g *Gateway) serveCall(c *gwConn, n int) bool {
	req := &c.req
	var rt route
	if ref := g.decide(&req.head, &rt); ref != nil {
		g.countRefusal(ref)
		c.br.Discard(n)
		// Read even when the connection closes after: closed with unread
		// bytes, it would be reset, and the answer could be lost.
		discarded := c.discardBody(req.contentLength)
		keep := !req.closeAfter && discarded
		return c.writeError(ref.Code, ref.Retry, ref.Err.Error(), keep) && keep
	}
	g.srv.calls.Add(1)
	code, unreachable, keep := g.proxyCall(c, n, &rt)
	g.srv.calls.Add(-1)
	rt.ic.End()
	g.finish(&rt, code, unreachable)
	return keep
}

// proxyCall forwards the call to rt.addr and relays the answer: the status
// answered, whether the address could not be dialled, and whether the
// connection is kept for another call.
func (g *Gateway) proxyCall(c *gwConn, n int, rt *route) (code int, unreachable, keep bool) {
	req := &c.req
	// A call with no body whose reused connection turns out closed before
	// any answer is sent again on a new one, as net/http's Transport does;
	// its head stays in the buffer until then.
	resend := req.contentLength == 0 && req.idempotent
	pending := n // bytes of the call still in c.br
	discardHead := func() {
		if pending > 0 {
			c.br.Discard(pending)
			pending = 0
		}
	}
	// The caller is watched from when the call is sent until its answer is
	// relayed (see gwWatchAfter).
	defer c.stopWatch()
	var (
		up   *upConn
		resp response
	)
	for attempt := 0; ; attempt++ {
		var err error
		// The connection of this caller's last call, when it was to the same
		// address and is still usable.
		up, c.up = c.up, nil
		if up != nil && up.addr != rt.addr {
			g.srv.pool.put(up)
			up = nil
		} else if up != nil && !up.usable(rt.start) {
			up.close()
			up = nil
		}
		if up == nil {
			up, err = g.srv.pool.get(rt.addr, rt.start)
		}
		if err != nil {
			discardHead()
			code, unreachable, msg := g.upstreamFailed(rt, err, false)
			if attempt > 0 {
				// The first attempt may have reached the service.
				code, unreachable = http.StatusBadGateway, false
			}
			discarded := c.discardBody(req.contentLength)
			keep := !req.closeAfter && discarded
			return code, unreachable, c.writeError(code, unreachable, msg, keep) && keep
		}
		c.writeRequestHead(up.bw, rt)
		bodyLost := false // the caller's body was read, in part or whole
		if !resend {
			discardHead()
			if req.contentLength > 0 {
				bodyLost = true
				var readErr bool
				if readErr, err = relayN(up.bw, c.br, req.contentLength); readErr {
					// The caller went away, or broke its own call.
					up.close()
					g.logger.Debug("caller's body cut short", "service", rt.ti.versionKey, "error", err)
					return statusClientGone, false, false
				}
			}
		}
		if err == nil {
			err = up.bw.Flush()
		}
		if err == nil {
			c.armWatch(up, pending, rt.start)
			// The answer takes the container some time: when busy, let
			// the other connections run first rather than read nothing now
			// (a system call, then a park and a wake by the poller).
			g.srv.yieldIfBusy()
			resp, err = up.readResponse(c.bw, rt.remote)
		}
		if err == nil {
			break
		}
		c.stopWatch()
		up.close()
		if c.gone.Load() {
			g.upstreamFailed(rt, err, true)
			return statusClientGone, false, false
		}
		if resend && up.reused && attempt < maxResends && closedBeforeAnswer(err) {
			continue
		}
		discardHead()
		code, unreachable, msg := g.upstreamFailed(rt, err, false)
		if bodyLost {
			// What is left of the body is unread: linger before closing.
			c.linger = true
		}
		keep := !req.closeAfter && !bodyLost && c.discardBody(req.contentLength)
		return code, unreachable, c.writeError(code, unreachable, msg, keep) && keep
	}
	discardHead()

	noBody := req.isHead || resp.code == http.StatusNoContent || resp.code == http.StatusNotModified
	toEOF := !noBody && !resp.chunked && resp.contentLength < 0
	keep = !req.closeAfter && !toEOF && !g.srv.shutting.Load()
	c.writeAnswerHead(up, &resp, rt, keep, noBody)
	var err error
	switch {
	case noBody:
	case resp.chunked:
		err = up.relayChunked(c.bw)
	case toEOF:
		err = relayToEOF(c.bw, up.br)
	default:
		_, err = relayN(c.bw, up.br, resp.contentLength)
	}
	if err == nil {
		err = c.bw.Flush()
	}
	// Stopped before up is kept: a watch closes up when the caller goes.
	c.stopWatch()
	if err != nil || c.gone.Load() {
		// The head is sent: all that is left is to cut the answer short,
		// as net/http does.
		g.logger.Debug("answer cut short", "service", rt.ti.versionKey, "container", rt.tgt.ID, "error", err)
		up.close()
		return resp.code, false, false
	}
	if resp.closeUp || toEOF {
		up.close()
	} else {
		// Kept for this connection's next call, which most likely goes to
		// the same container.
		rt.end = time.Now()
		up.reused, up.idleSince, c.up = true, rt.end, up
	}
	return resp.code, false, keep
}

// maxResends bounds the sending again of a call whose reused connections
// turn out closed: a new connection ends them sooner.
const maxResends = 4

// closedBeforeAnswer tells whether err says that a reused connection was
// closed by its other end before any byte of an answer.
func closedBeforeAnswer(err error) bool {
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// discardBody reads and drops a refused call's body; false when it is too
// long to, or cannot be read, and the connection is to be closed.
func (c *gwConn) discardBody(n int64) bool {
	if n == 0 {
		return true
	}
	if n > gwMaxDiscard {
		c.linger = true
		return false
	}
	_, err := c.br.Discard(int(n))
	return err == nil
}

// writeRequestHead writes the call's head to its upstream connection: the
// caller's, with the path prefixed when the call named its service by Host,
// the X-Forwarded headers of ReverseProxy's SetXForwarded, and when
// forwarded to another gateway the container chosen and the hop.
func (c *gwConn) writeRequestHead(bw *bufio.Writer, rt *route) {
	req := &c.req
	bw.Write(req.method)
	bw.WriteByte(' ')
	bw.WriteString(rt.prefix)
	bw.Write(req.target)
	bw.WriteString(" HTTP/1.1\r\n")
	for _, l := range req.lines {
		if l.kind == hdrDrop || l.kind == hdrCoexistRemote && rt.remote {
			continue
		}
		bw.Write(req.raw[l.start:l.end])
		bw.WriteString("\r\n")
	}
	if c.ip != "" {
		bw.WriteString("X-Forwarded-For: ")
		for _, v := range req.xff {
			bw.Write(v)
			bw.WriteString(", ")
		}
		bw.WriteString(c.ip)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-Host: ")
	bw.WriteString(req.head.host)
	bw.WriteString("\r\nX-Forwarded-Proto: http\r\n")
	if rt.remote {
		bw.WriteString(api.HeaderContainer + ": ")
		bw.WriteString(rt.tgt.ID)
		bw.WriteString("\r\n" + api.HeaderHops + ": 1\r\n")
	}
	bw.WriteString("\r\n")
}

// writeAnswerHead writes the answer's head to the caller: the upstream's,
// without its hop-by-hop headers, with Coexist-Served-By when the container
// is local, and framed for this connection.
func (c *gwConn) writeAnswerHead(up *upConn, resp *response, rt *route, keep, noBody bool) {
	bw := c.bw
	bw.WriteString("HTTP/1.1 ")
	bw.Write(resp.status)
	if len(resp.status) == 3 {
		bw.WriteByte(' ') // no reason phrase: the space is still due
	}
	bw.WriteString("\r\n")
	for _, l := range up.lines {
		if l.kind == hdrDrop || l.kind == hdrCoexistRemote && !rt.remote {
			continue
		}
		line := up.head[l.start:l.end]
		name := line[:l.nameLen]
		isLength := eqFold(name, "content-length")
		// A Connection header cannot take the framing away.
		if resp.chunked && isLength || !isLength && len(resp.connTokens) > 0 && resp.dropped(name) {
			continue
		}
		bw.Write(line)
		bw.WriteString("\r\n")
	}
	if !rt.remote {
		// The remote gateway sets it for its own containers.
		bw.WriteString(api.HeaderServedBy + ": ")
		bw.WriteString(rt.ti.servedBy[0])
		bw.WriteString("\r\n")
	}
	if resp.chunked && !noBody {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if !keep {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// writeError answers the call with an error of the gateway's own, as
// WriteError does for ServeHTTP; false when the caller cannot be written to.
func (c *gwConn) writeError(code int, retry bool, msg string, keep bool) bool {
	body := errorBody(msg)
	b := appendStatus(make([]byte, 0, 256+len(body)), code, http.StatusText(code))
	b = append(b, "Content-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"...)
	if retry {
		b = append(b, api.HeaderRetry+": "+api.RetrySafe+"\r\n"...)
	}
	b = append(b, "Date: "...)
	b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	b = append(b, "\r\n"...)
	if !keep {
		b = append(b, "Connection: close\r\n"...)
	}
	b = append(b, "\r\n"...)
	if !c.req.isHead {
		b = append(b, body...)
	}
	if _, err := c.bw.Write(b); err != nil {
		return false
	}
	return c.bw.Flush() == nil
}
