package gateway

import (
	"bytes"
	"strconv"
	"strings"
)

// The HTTP/1.1 heads Serve reads and writes itself (RFC 9110, RFC 9112). It
// reads a call's head strictly: whatever it does not take, it leaves to
// net/http (see Serve). It relays an answer's head line by line, dropping
// the hop-by-hop headers and framing the body itself.

// hdrKind classifies a header line.
type hdrKind uint8

const (
	hdrOther         hdrKind = iota // relayed as it is
	hdrDrop                         // not relayed
	hdrCoexistRemote                // in a call: relayed to a container, replaced when forwarded to a gateway; in an answer: relayed from a gateway only
)

// hdrLine is one header line of a head: [start, end) without its line end,
// and its name's length.
type hdrLine struct {
	start, end, nameLen int
	kind                hdrKind
}

// request is the head of a call Serve answers itself, parsed from the
// connection's buffer; its byte slices are valid until the head is
// discarded from it.
type request struct {
	raw            []byte // the head
	method, target []byte // in raw: read them only before the body
	isHead         bool   // the method is HEAD: the answer has no body
	idempotent     bool   // GET, HEAD, OPTIONS or TRACE, or an Idempotency-Key
	lines          []hdrLine
	head           callHead
	contentLength  int64
	closeAfter     bool     // Connection: close
	xff            [][]byte // X-Forwarded-For values
}

// parse parses a whole head, up to and including its empty line, and tells
// whether Serve answers the call itself.
func (r *request) parse(b []byte) bool {
	// The strings of the previous call on this connection, which the next
	// one most likely repeats: reused, they are not allocated again.
	prev := r.head
	*r = request{raw: b, lines: r.lines[:0], xff: r.xff[:0]}
	line, rest, ok := cutLine(b)
	if !ok {
		return false
	}
	// Request line: method SP origin-form SP HTTP/1.1.
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || !isToken(line[:sp]) {
		return false
	}
	r.method = line[:sp]
	r.isHead = string(r.method) == "HEAD"
	r.idempotent = idempotentMethod(r.method)
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return false
	}
	r.target = line[:sp]
	if r.target[0] != '/' {
		return false
	}
	q := len(r.target)
	for i, ch := range r.target {
		inQuery := q < len(r.target)
		switch {
		case ch == '?' && !inQuery:
			q = i
		case ch == '%':
			// No escapes in the path: it is then what net/http decodes it
			// to. One in the query is relayed when well formed, as
			// ReverseProxy relays it.
			if !inQuery || i+2 >= len(r.target) || !isHex(r.target[i+1]) || !isHex(r.target[i+2]) {
				return false
			}
		case ch == ';' && inQuery:
			return false // ReverseProxy drops such a query's parameters
		case !targetChars[ch]:
			return false // ReverseProxy would escape it
		}
	}
	r.head.path = reuse(prev.path, r.target[:q])
	if r.head.path == MetricsPath || strings.HasPrefix(r.head.path, LogsPathPrefix) {
		return false // net/http answers the gateway's own endpoints
	}

	start := len(b) - len(rest)
	hosts := 0
	lengths := 0
	var seen uint8 // the coexist headers set, as bits of setFirst
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return false
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !isToken(line[:colon]) || !validValue(line[colon+1:]) {
			return false // also an obs-fold line, which starts with a space
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		l := hdrLine{start: start, end: start + len(line), nameLen: colon}
		start = len(b) - len(rest)
		switch len(name) {
		case 4:
			if eqFold(name, "host") {
				hosts++
				if !validHost(value) {
					return false
				}
				r.head.host = reuse(prev.host, value)
			}
		case 14:
			switch {
			case eqFold(name, "content-length"):
				lengths++
				n, ok := parseLength(value)
				if !ok {
					return false
				}
				r.contentLength = n
			case eqFold(name, "coexist-client"):
				setFirst(&r.head.client, prev.client, value, &seen, 1)
			}
		case 10:
			if eqFold(name, "connection") {
				if !r.connection(value) {
					return false
				}
				l.kind = hdrDrop
			} else if eqFold(name, "keep-alive") {
				return false
			}
		case 15:
			switch {
			case eqFold(name, "x-forwarded-for"):
				r.xff = append(r.xff, value)
				l.kind = hdrDrop
			case eqFold(name, "idempotency-key"):
				r.idempotent = true // as net/http's Transport reads it
			}
		case 16:
			switch {
			case eqFold(name, "x-forwarded-host"):
				l.kind = hdrDrop
			case eqFold(name, "proxy-connection"):
				return false
			}
		case 17:
			switch {
			case eqFold(name, "x-forwarded-proto"):
				l.kind = hdrDrop
			case eqFold(name, "coexist-container"):
				l.kind = hdrCoexistRemote
				setFirst(&r.head.container, prev.container, value, &seen, 2)
			case eqFold(name, "transfer-encoding"):
				return false
			case eqFold(name, "x-idempotency-key"):
				r.idempotent = true
			}
		case 12:
			if eqFold(name, "coexist-hops") {
				l.kind = hdrCoexistRemote
				setFirst(&r.head.hops, prev.hops, value, &seen, 4)
			}
		case 22:
			switch {
			case eqFold(name, "coexist-client-version"):
				setFirst(&r.head.clientVersion, prev.clientVersion, value, &seen, 8)
			case eqFold(name, "coexist-client-require"):
				setFirst(&r.head.require, prev.require, value, &seen, 16)
			}
		case 9:
			if eqFold(name, "forwarded") {
				l.kind = hdrDrop
			}
		case 2:
			if eqFold(name, "te") {
				return false
			}
		case 6:
			if eqFold(name, "expect") {
				return false
			}
		case 7:
			if eqFold(name, "upgrade") || eqFold(name, "trailer") {
				return false
			}
		case 19:
			if eqFold(name, "proxy-authorization") {
				return false
			}
		case 18:
			if eqFold(name, "proxy-authenticate") {
				l.kind = hdrDrop // hop-by-hop, as ReverseProxy drops it
			}
		}
		r.lines = append(r.lines, l)
	}
	// One Host, as HTTP/1.1 requires; at most one Content-Length, of a
	// body that fits in the connections' socket buffers: the body is
	// written whole before the answer is read, so a longer one could
	// deadlock with a container that answers before it reads all of it.
	return hosts == 1 && lengths <= 1 && r.contentLength <= gwMaxBody && len(rest) == 0
}

// connection reads a Connection header's value: only keep-alive and close
// are taken.
func (r *request) connection(v []byte) bool {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = trimOWS(v[:i]), v[i+1:]
		} else {
			tok, v = trimOWS(v), nil
		}
		switch {
		case len(tok) == 0, eqFold(tok, "keep-alive"):
		case eqFold(tok, "close"):
			r.closeAfter = true
		default:
			return false
		}
	}
	return true
}

// setFirst sets *dst to v unless an earlier header set it, as
// http.Header.Get reads the first value; prev is reused when equal to v.
func setFirst(dst *string, prev string, v []byte, seen *uint8, bit uint8) {
	if *seen&bit == 0 {
		*seen |= bit
		*dst = reuse(prev, v)
	}
}

// reuse returns prev when it equals b, or else b as a new string.
func reuse(prev string, b []byte) string {
	if string(b) == prev {
		return prev
	}
	return string(b)
}

// cutLine cuts the first CRLF-ended line off b; a line ended by a bare LF is
// not taken.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, nil, false
	}
	line = b[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, false
	}
	return line, b[i+1:], true
}

// eqFold tells whether b is lower, ignoring ASCII case; lower is lower case.
func eqFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != lower[i] {
			return false
		}
	}
	return true
}

// targetChars marks the characters of an origin-form target that are
// relayed as they are (RFC 3986 pchar and "/?", less '%', which parse
// checks apart).
var targetChars = func() (t [256]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch] = true
		t[ch-'a'+'A'] = true
	}
	for _, ch := range "-._~!$&'()*+,;=:@/?" {
		t[ch] = true
	}
	return t
}()

func isHex(ch byte) bool {
	return '0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F'
}

// tokenChars marks the characters of a token (RFC 9110 §5.6.2).
var tokenChars = func() (t [256]bool) {
	for ch := '0'; ch <= '9'; ch++ {
		t[ch] = true
	}
	for ch := 'a'; ch <= 'z'; ch++ {
		t[ch] = true
		t[ch-'a'+'A'] = true
	}
	for _, ch := range "!#$%&'*+-.^_`|~" {
		t[ch] = true
	}
	return t
}()

func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		if !tokenChars[ch] {
			return false
		}
	}
	return true
}

// validValue tells whether b is a field value with its surrounding spaces:
// visible characters, spaces, tabs and obs-text, no other control.
func validValue(b []byte) bool {
	for _, ch := range b {
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return false
		}
	}
	return true
}

// validHost takes the Host values of host names, IPv4 and bracketed IPv6
// addresses, with a port; net/http judges any other.
func validHost(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z', 'A' <= ch && ch <= 'Z', '0' <= ch && ch <= '9':
		case ch == '.', ch == '-', ch == '_', ch == ':', ch == '[', ch == ']':
		default:
			return false
		}
	}
	return true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseLength parses a Content-Length value: digits only, at most 18.
func parseLength(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	return n, true
}

// idempotentMethod tells whether a call of this method may be sent again
// when a pooled connection turns out closed (as net/http's Transport does).
func idempotentMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	return false
}

// appendStatus appends an answer's status line.
func appendStatus(b []byte, code int, reason string) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, reason...)
	return append(b, "\r\n"...)
}
