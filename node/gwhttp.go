package node

import (
	"bytes"
	"strconv"
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
	hdrCoexistRemote                // relayed to a container, replaced when forwarded to a gateway
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
	method, target []byte
	lines          []hdrLine
	head           callHead
	contentLength  int64
	closeAfter     bool     // Connection: close
	xff            [][]byte // X-Forwarded-For values
}

// parse parses a whole head, up to and including its empty line, and tells
// whether Serve answers the call itself.
func (r *request) parse(b []byte) bool {
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
		// No escapes in the path: it is then what net/http would decode it
		// to. The query is relayed as it is.
		if ch <= ' ' || ch >= 0x7f || ch == '#' || ch == '%' && q == len(r.target) {
			return false
		}
		if ch == '?' && q == len(r.target) {
			q = i
		}
	}
	r.head.path = string(r.target[:q])
	if r.head.path == MetricsPath {
		return false
	}

	start := len(b) - len(rest)
	hosts := 0
	lengths := 0
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
				r.head.host = string(value)
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
				setFirst(&r.head.client, value)
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
			if eqFold(name, "x-forwarded-for") {
				r.xff = append(r.xff, value)
				l.kind = hdrDrop
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
				setFirst(&r.head.container, value)
			case eqFold(name, "transfer-encoding"):
				return false
			}
		case 12:
			if eqFold(name, "coexist-hops") {
				l.kind = hdrCoexistRemote
				setFirst(&r.head.hops, value)
			}
		case 22:
			switch {
			case eqFold(name, "coexist-client-version"):
				setFirst(&r.head.clientVersion, value)
			case eqFold(name, "coexist-client-require"):
				setFirst(&r.head.require, value)
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
		}
		r.lines = append(r.lines, l)
	}
	// One Host, as HTTP/1.1 requires; at most one Content-Length.
	return hosts == 1 && lengths <= 1 && len(rest) == 0
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
// http.Header.Get reads the first value.
func setFirst(dst *string, v []byte) {
	if *dst == "" {
		*dst = string(v)
	}
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
