package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Upstream connections: Serve's connections to containers and to other
// nodes' gateways.
const (
	upDialTimeout = 2 * time.Second
	// upIdleTimeout closes a pooled connection unused this long.
	upIdleTimeout = 90 * time.Second
	// upMaxIdlePerAddr bounds the pooled connections to one address.
	upMaxIdlePerAddr = 512
	// upMaxHead bounds an answer's head.
	upMaxHead = 1 << 20
)

// upstreamPool pools idle connections by address.
type upstreamPool struct {
	dialer net.Dialer

	mu     sync.RWMutex
	addrs  map[string]*idleConns
	closed bool
}

type idleConns struct {
	mu    sync.Mutex
	conns []*upConn // the most recently used last
}

func newUpstreamPool() *upstreamPool {
	return &upstreamPool{
		dialer: net.Dialer{Timeout: upDialTimeout, KeepAlive: 30 * time.Second},
		addrs:  make(map[string]*idleConns),
	}
}

func (p *upstreamPool) idle(addr string) *idleConns {
	p.mu.RLock()
	ic := p.addrs[addr]
	p.mu.RUnlock()
	if ic != nil {
		return ic
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if ic = p.addrs[addr]; ic == nil {
		ic = &idleConns{}
		p.addrs[addr] = ic
	}
	return ic
}

// get returns a pooled connection to addr, or a new one. A dial's error is a
// *net.OpError whose Op is "dial" (see dialFailed).
func (p *upstreamPool) get(addr string, now time.Time) (*upConn, error) {
	ic := p.idle(addr)
	for {
		ic.mu.Lock()
		n := len(ic.conns)
		if n == 0 {
			ic.mu.Unlock()
			break
		}
		u := ic.conns[n-1]
		ic.conns[n-1] = nil
		ic.conns = ic.conns[:n-1]
		ic.mu.Unlock()
		if !u.usable(now) {
			u.close()
			continue
		}
		return u, nil
	}
	nc, err := p.dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	rw := newRawIO(nc)
	return &upConn{
		nc:   nc,
		addr: addr,
		br:   bufio.NewReaderSize(rw, gwBufSize),
		bw:   bufio.NewWriterSize(rw, gwBufSize),
	}, nil
}

// put pools a connection whose last answer was read whole, idle since then.
func (p *upstreamPool) put(u *upConn) {
	if u.closed.Load() {
		return
	}
	p.idle(u.addr) // made under the write lock when missing
	// Under the read lock: sweep forgets an address only under the write
	// lock, so the list appended to is the one in p.addrs.
	p.mu.RLock()
	ic := p.addrs[u.addr]
	if p.closed || ic == nil {
		p.mu.RUnlock()
		u.close()
		return
	}
	ic.mu.Lock()
	full := len(ic.conns) >= upMaxIdlePerAddr
	if !full {
		ic.conns = append(ic.conns, u)
	}
	ic.mu.Unlock()
	p.mu.RUnlock()
	if full {
		u.close()
	}
}

// janitor closes, now and then, the pooled connections idle too long or
// closed by their other end, until done is closed.
func (p *upstreamPool) janitor(done <-chan struct{}) {
	t := time.NewTicker(upIdleTimeout / 6)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		now := time.Now()
		p.sweep(func(u *upConn) bool { return u.usable(now) })
	}
}

// sweep closes the pooled connections keep refuses, and forgets addresses
// with none left.
func (p *upstreamPool) sweep(keep func(*upConn) bool) {
	p.mu.Lock()
	all := make(map[string]*idleConns, len(p.addrs))
	for a, ic := range p.addrs {
		all[a] = ic
	}
	p.mu.Unlock()
	for addr, ic := range all {
		ic.mu.Lock()
		kept := ic.conns[:0]
		var dropped []*upConn
		for _, u := range ic.conns {
			if keep(u) {
				kept = append(kept, u)
			} else {
				dropped = append(dropped, u)
			}
		}
		clear(ic.conns[len(kept):])
		ic.conns = kept
		empty := len(kept) == 0
		ic.mu.Unlock()
		for _, u := range dropped {
			u.close()
		}
		if empty {
			p.mu.Lock()
			ic.mu.Lock()
			if len(ic.conns) == 0 && p.addrs[addr] == ic {
				delete(p.addrs, addr)
			}
			ic.mu.Unlock()
			p.mu.Unlock()
		}
	}
}

// closeAll closes every pooled connection, and those put back from now on.
func (p *upstreamPool) closeAll() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.sweep(func(*upConn) bool { return false })
}

// upConn is a connection to a container or a gateway.
type upConn struct {
	nc        net.Conn
	addr      string
	br        *bufio.Reader
	bw        *bufio.Writer
	idleSince time.Time // when its last answer was read whole
	reused    bool      // it carried a call before this one
	closed    atomic.Bool

	head  []byte    // the answer's head, lines without their ends
	lines []hdrLine // its header lines
	long  []byte    // a line longer than br's buffer
}

// close closes the connection; it may be called more than once, and by a
// caller's watch while the call's goroutine reads it.
func (u *upConn) close() {
	u.closed.Store(true)
	u.nc.Close()
}

// usable tells whether an idle connection may carry a call at now. Every
// reuse is checked with a peek, however short the idle time: a connection
// its container closed (a container that stopped, and another that took its
// port) is not sent a call, and one with bytes nobody asked for (a body
// written after an answer to HEAD, or with a 204 or 304) is dropped, so that
// they never reach the next caller as its answer.
func (u *upConn) usable(now time.Time) bool {
	if u.closed.Load() || u.br.Buffered() > 0 {
		return false
	}
	return now.Sub(u.idleSince) <= upIdleTimeout && connAlive(u.nc)
}

// response is an answer's head, as readResponse reads it into upConn.head.
type response struct {
	code          int
	status        []byte // "200 OK": the status line after the version
	contentLength int64  // -1: none
	chunked       bool
	closeUp       bool     // the connection ends with this answer
	connTokens    [][]byte // headers the Connection header names
}

// errBadAnswer is the error of an answer that breaks HTTP/1.1.
var errBadAnswer = errors.New("malformed HTTP answer")

// readLine reads one line without its end (CRLF, or a bare LF as net/http
// also takes), valid until the next read.
func (u *upConn) readLine(limit int) ([]byte, error) {
	line, err := u.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		u.long = append(u.long[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = u.br.ReadSlice('\n')
			u.long = append(u.long, line...)
			if len(u.long) > limit {
				return nil, fmt.Errorf("%w: a line longer than %d bytes", errBadAnswer, limit)
			}
		}
		line = u.long
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// readResponse reads an answer's head. The 1xx interim answers before it
// (103 Early Hints, 102 Processing) are relayed to interim as they come, as
// ReverseProxy relays them; 101 is an error: the call asked for no upgrade
// (Serve leaves Expect and Upgrade to net/http). remote tells that the
// answer comes from another node's gateway, whose Coexist-* answer headers
// are relayed; a container's are not (see writeAnswerHead).
func (u *upConn) readResponse(interim *bufio.Writer, remote bool) (response, error) {
	for n := 0; ; n++ {
		if n > 5 {
			return response{}, fmt.Errorf("%w: more than 5 interim (1xx) answers", errBadAnswer)
		}
		resp, err := u.readOneResponse()
		if err != nil {
			return resp, err
		}
		if resp.code >= 200 {
			return resp, nil
		}
		if resp.code == 101 {
			return resp, fmt.Errorf("%w: 101 Switching Protocols to a call that asked for no upgrade", errBadAnswer)
		}
		if err := u.relayHead(interim, &resp, remote); err != nil {
			return resp, err
		}
	}
}

// relayHead writes an interim answer's head to w, without its hop-by-hop
// headers and without Content-Length, which an interim answer cannot have
// (RFC 9110 §8.6, as net/http drops it), and flushes it.
func (u *upConn) relayHead(w *bufio.Writer, resp *response, remote bool) error {
	w.WriteString("HTTP/1.1 ")
	w.Write(resp.status)
	w.WriteString("\r\n")
	for _, l := range u.lines {
		name := u.head[l.start : l.start+l.nameLen]
		if l.kind == hdrDrop || l.kind == hdrCoexistRemote && !remote || eqFold(name, "content-length") || resp.dropped(name) {
			continue
		}
		w.Write(u.head[l.start:l.end])
		w.WriteString("\r\n")
	}
	w.WriteString("\r\n")
	return w.Flush()
}

func (u *upConn) readOneResponse() (response, error) {
	resp := response{contentLength: -1}
	u.head, u.lines = u.head[:0], u.lines[:0]
	line, err := u.readLine(upMaxHead)
	if err != nil {
		return resp, err
	}
	// HTTP/1.x SP 3DIGIT [SP reason]
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		len(line) > 12 && line[12] != ' ' {
		return resp, fmt.Errorf("%w: status line %q", errBadAnswer, truncate(line))
	}
	http10 := line[7] == '0'
	for _, ch := range line[9:12] {
		if ch < '0' || ch > '9' {
			return resp, fmt.Errorf("%w: status line %q", errBadAnswer, truncate(line))
		}
		resp.code = resp.code*10 + int(ch-'0')
	}
	if resp.code < 100 || !validValue(line[9:]) {
		return resp, fmt.Errorf("%w: status line %q", errBadAnswer, truncate(line))
	}
	u.head = append(u.head, line[9:]...)
	statusEnd := len(u.head)
	keepAlive, closeConn := false, false
	var te []byte
	for {
		line, err := u.readLine(upMaxHead)
		if err != nil {
			return resp, err
		}
		if len(line) == 0 {
			break
		}
		if len(u.head)+len(line) > upMaxHead {
			return resp, fmt.Errorf("%w: a head longer than %d bytes", errBadAnswer, upMaxHead)
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) || !validValue(line[colon+1:]) {
			return resp, fmt.Errorf("%w: header line %q", errBadAnswer, truncate(line))
		}
		l := hdrLine{start: len(u.head), nameLen: colon}
		u.head = append(u.head, line...)
		l.end = len(u.head)
		// The value as kept in head, which outlives line.
		name, value := line[:colon], trimOWS(u.head[l.start+colon+1:l.end])
		switch {
		case eqFold(name, "content-length"):
			n, ok := parseLength(value)
			if !ok || resp.contentLength >= 0 && resp.contentLength != n {
				return resp, fmt.Errorf("%w: Content-Length %q", errBadAnswer, truncate(value))
			}
			resp.contentLength = n
		case eqFold(name, "transfer-encoding"):
			if te != nil {
				return resp, fmt.Errorf("%w: more than one Transfer-Encoding", errBadAnswer)
			}
			te = value
			l.kind = hdrDrop
		case eqFold(name, "connection"):
			for _, tok := range bytes.Split(value, []byte(",")) {
				tok = trimOWS(tok)
				switch {
				case eqFold(tok, "close"):
					closeConn = true
				case eqFold(tok, "keep-alive"):
					keepAlive = true
				case len(tok) > 0:
					resp.connTokens = append(resp.connTokens, tok)
				}
			}
			l.kind = hdrDrop
		case eqFold(name, "keep-alive"), eqFold(name, "proxy-connection"), eqFold(name, "proxy-authenticate"),
			eqFold(name, "proxy-authorization"), eqFold(name, "te"), eqFold(name, "upgrade"):
			l.kind = hdrDrop
		case eqFold(name, "coexist-served-by"), eqFold(name, "coexist-retry"):
			// A container cannot claim to be another, nor say that a call
			// it received is safe to send again: Coexist-Retry is the
			// gateway's word alone (docs/design.md §4).
			l.kind = hdrCoexistRemote
		}
		u.lines = append(u.lines, l)
	}
	resp.status = u.head[:statusEnd]
	if te != nil {
		// Only chunked is taken (what net/http's Transport takes too).
		if !eqFold(te, "chunked") {
			return resp, fmt.Errorf("%w: Transfer-Encoding %q", errBadAnswer, truncate(te))
		}
		resp.chunked, resp.contentLength = true, -1
	}
	resp.closeUp = closeConn || http10 && !keepAlive
	return resp, nil
}

// dropped tells whether a Connection header of the answer named the header
// of this line.
func (r *response) dropped(name []byte) bool {
	for _, tok := range r.connTokens {
		if bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

// relayN copies n bytes of src to dst, flushing dst whenever src has no
// more at hand, so that a body that comes in parts goes on in parts;
// srcErr tells that an error is src's.
func relayN(dst *bufio.Writer, src *bufio.Reader, n int64) (srcErr bool, err error) {
	for n > 0 {
		if src.Buffered() == 0 {
			if dst.Buffered() > 0 {
				if err := dst.Flush(); err != nil {
					return false, err
				}
			}
			if _, err := src.Peek(1); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return true, err
			}
		}
		k := int(min(int64(src.Buffered()), n))
		b, _ := src.Peek(k)
		if _, err := dst.Write(b); err != nil {
			return false, err
		}
		src.Discard(k)
		n -= int64(k)
	}
	return false, nil
}

// relayToEOF copies src to dst until src ends, flushing as relayN does.
func relayToEOF(dst *bufio.Writer, src *bufio.Reader) error {
	for {
		if src.Buffered() == 0 {
			if dst.Buffered() > 0 {
				if err := dst.Flush(); err != nil {
					return err
				}
			}
			if _, err := src.Peek(1); err != nil {
				if err == io.EOF {
					return nil
				}
				return err
			}
		}
		b, _ := src.Peek(src.Buffered())
		if _, err := dst.Write(b); err != nil {
			return err
		}
		src.Discard(len(b))
	}
}

// relayChunked copies a chunked body as it is, chunk by chunk, and its
// trailer section.
func (u *upConn) relayChunked(dst *bufio.Writer) error {
	for {
		if err := u.flushBeforeWait(dst); err != nil {
			return err
		}
		line, err := u.readLine(gwBufSize)
		if err != nil {
			return err
		}
		size, ok := chunkSize(line)
		if !ok {
			return fmt.Errorf("%w: chunk size line %q", errBadAnswer, truncate(line))
		}
		dst.Write(line)
		dst.WriteString("\r\n")
		if size == 0 {
			break
		}
		if _, err := relayN(dst, u.br, size); err != nil {
			return err
		}
		crlf, err := u.readLine(2)
		if err != nil {
			return err
		}
		if len(crlf) != 0 {
			return fmt.Errorf("%w: no line end after a chunk", errBadAnswer)
		}
		if _, err := dst.WriteString("\r\n"); err != nil {
			return err
		}
	}
	total := 0
	for {
		if err := u.flushBeforeWait(dst); err != nil {
			return err
		}
		line, err := u.readLine(gwBufSize)
		if err != nil {
			return err
		}
		total += len(line)
		if total > upMaxHead {
			return fmt.Errorf("%w: trailers longer than %d bytes", errBadAnswer, upMaxHead)
		}
		if len(line) > 0 {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 || !isToken(line[:colon]) || !validValue(line[colon+1:]) {
				return fmt.Errorf("%w: trailer line %q", errBadAnswer, truncate(line))
			}
		}
		dst.Write(line)
		if _, err := dst.WriteString("\r\n"); err != nil {
			return err
		}
		if len(line) == 0 {
			return nil
		}
	}
}

// flushBeforeWait flushes dst when reading u would wait: what is relayed
// reaches the caller before the container sends more.
func (u *upConn) flushBeforeWait(dst *bufio.Writer) error {
	if u.br.Buffered() == 0 && dst.Buffered() > 0 {
		return dst.Flush()
	}
	return nil
}

// chunkSize parses a chunk size line: hex digits, then extensions, which
// are relayed as they are.
func chunkSize(line []byte) (int64, bool) {
	var n int64
	i := 0
	for ; i < len(line); i++ {
		ch := line[i]
		var d byte
		switch {
		case '0' <= ch && ch <= '9':
			d = ch - '0'
		case 'a' <= ch && ch <= 'f':
			d = ch - 'a' + 10
		case 'A' <= ch && ch <= 'F':
			d = ch - 'A' + 10
		default:
			goto ext
		}
		if i >= 15 {
			return 0, false
		}
		n = n<<4 | int64(d)
	}
ext:
	if i == 0 {
		return 0, false
	}
	rest := trimOWS(line[i:])
	if len(rest) > 0 && rest[0] != ';' || !validValue(rest) {
		return 0, false
	}
	return n, true
}

func truncate(b []byte) string {
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}
