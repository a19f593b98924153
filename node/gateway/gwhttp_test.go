package gateway

import (
	"bufio"
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"reflect"
	"strings"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// headWith returns a head Serve takes, GET /greeter/x?a=1 with a Host, and
// lines ("Name: value") after its Host.
func headWith(lines ...string) string {
	return requestHead("GET /greeter/x?a=1 HTTP/1.1", append([]string{"Host: gw"}, lines...)...)
}

// requestHead returns a head of the request line and lines.
func requestHead(requestLine string, lines ...string) string {
	var b strings.Builder
	b.WriteString(requestLine + "\r\n")
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func TestRequestParse(t *testing.T) {
	tests := []struct {
		name  string
		head  string
		ok    bool  // Serve answers the call itself
		close bool  // when ok: Connection: close
		n     int64 // when ok: the body's length
	}{
		{name: "plain", head: headWith(), ok: true},
		{name: "client headers", head: headWith("Coexist-Client: web", "Coexist-Client-Version: 1.0.0",
			"Coexist-Client-Require: >= 1.0", "Coexist-Container: g1", "Coexist-Hops: 0"), ok: true},
		{name: "lower-case names, spaces and tabs", head: requestHead("GET /x HTTP/1.1", "host:\tgw:80 ", "x-a:b"), ok: true},
		{name: "body", head: headWith("Content-Length: 12"), ok: true, n: 12},
		{name: "empty body", head: headWith("Content-Length: 0"), ok: true},
		{name: "length with leading zeros", head: headWith("Content-Length: 007"), ok: true, n: 7},
		{name: "keep-alive", head: headWith("Connection: keep-alive"), ok: true},
		{name: "close", head: headWith("Connection: close"), ok: true, close: true},
		{name: "keep-alive and close", head: headWith("Connection: Keep-Alive, CLOSE"), ok: true, close: true},
		{name: "close in a second Connection", head: headWith("Connection: keep-alive", "Connection: close"), ok: true, close: true},
		{name: "escape in the query", head: requestHead("GET /greeter/x?q=a%20b HTTP/1.1", "Host: gw"), ok: true},
		{name: "forwarding headers", head: headWith("X-Forwarded-For: 10.0.0.1", "X-Forwarded-Host: h",
			"X-Forwarded-Proto: https", "Forwarded: for=10.0.0.1"), ok: true},
		{name: "IPv6 host", head: requestHead("GET /x HTTP/1.1", "Host: [::1]:7780"), ok: true},
		{name: "obs-text in a value", head: headWith("X-A: caf\xc3\xa9"), ok: true},
		{name: "first values, even empty", head: headWith("Coexist-Hops:", "Coexist-Hops: 1", "Coexist-Client: ",
			"Coexist-Client: web", "Coexist-Container: g1", "Coexist-Container: g2"), ok: true},

		// Hop-by-hop headers and those that ask for more than forwarding.
		{name: "Transfer-Encoding", head: headWith("Transfer-Encoding: chunked")},
		{name: "Transfer-Encoding identity", head: headWith("Transfer-Encoding: identity")},
		{name: "Expect", head: headWith("Expect: 100-continue", "Content-Length: 1")},
		{name: "Upgrade", head: headWith("Connection: Upgrade", "Upgrade: websocket")},
		{name: "Upgrade alone", head: headWith("Upgrade: h2c")},
		{name: "TE", head: headWith("TE: trailers")},
		{name: "Trailer", head: headWith("Trailer: X-Sum")},
		{name: "Keep-Alive", head: headWith("Keep-Alive: timeout=5")},
		{name: "Proxy-Connection", head: headWith("Proxy-Connection: keep-alive")},
		{name: "Proxy-Authorization", head: headWith("Proxy-Authorization: Basic eDp5")},
		{name: "Connection naming a header", head: headWith("Connection: x-secret", "X-Secret: 1")},
		{name: "Connection naming a header after close", head: headWith("Connection: close, te")},

		// What net/http decodes or judges differently.
		{name: "escape in the path", head: requestHead("GET /greeter/a%20b HTTP/1.1", "Host: gw")},
		{name: "metrics", head: requestHead("GET /v1/metrics HTTP/1.1", "Host: gw")},
		{name: "metrics with a query", head: requestHead("GET /v1/metrics?x=1 HTTP/1.1", "Host: gw")},
		{name: "HTTP/1.0", head: requestHead("GET /x HTTP/1.0", "Host: gw")},
		{name: "HTTP/2.0", head: requestHead("GET /x HTTP/2.0", "Host: gw")},
		{name: "lower-case version", head: requestHead("GET /x http/1.1", "Host: gw")},
		{name: "space after the version", head: requestHead("GET /x HTTP/1.1 ", "Host: gw")},
		{name: "two spaces after the method", head: requestHead("GET  /x HTTP/1.1", "Host: gw")},
		{name: "absolute form", head: requestHead("GET http://gw/x HTTP/1.1", "Host: gw")},
		{name: "asterisk", head: requestHead("OPTIONS * HTTP/1.1", "Host: gw")},
		{name: "fragment", head: requestHead("GET /x#y HTTP/1.1", "Host: gw")},
		{name: "bad method", head: requestHead("G(T /x HTTP/1.1", "Host: gw")},
		{name: "no Host", head: requestHead("GET /x HTTP/1.1", "X-A: b")},
		{name: "two Hosts", head: headWith("Host: gw")},
		{name: "empty Host", head: requestHead("GET /x HTTP/1.1", "Host: ")},
		{name: "Host with a path", head: requestHead("GET /x HTTP/1.1", "Host: gw/x")},
		{name: "two Content-Lengths", head: headWith("Content-Length: 1", "Content-Length: 2")},
		{name: "two equal Content-Lengths", head: headWith("Content-Length: 1", "Content-Length: 1")},
		{name: "Content-Length list", head: headWith("Content-Length: 1, 1")},
		{name: "negative Content-Length", head: headWith("Content-Length: -1")},
		{name: "signed Content-Length", head: headWith("Content-Length: +1")},
		{name: "empty Content-Length", head: headWith("Content-Length: ")},
		{name: "huge Content-Length", head: headWith("Content-Length: 1234567890123456789")},
		{name: "bare LF ending a header", head: "GET /x HTTP/1.1\r\nHost: gw\n\r\n"},
		{name: "bare LF ending the request line", head: "GET /x HTTP/1.1\nHost: gw\r\n\r\n"},
		{name: "bare LF ending the head", head: "GET /x HTTP/1.1\r\nHost: gw\r\n\n"},
		{name: "CR in a value", head: headWith("X-A: a\rb")},
		{name: "NUL in a value", head: headWith("X-A: a\x00b")},
		{name: "obs-fold", head: headWith("X-A: a", " b")},
		{name: "space before the colon", head: headWith("X-A : a")},
		{name: "empty name", head: headWith(": a")},
		{name: "no colon", head: headWith("X-A")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r request
			if got := r.parse([]byte(tt.head)); got != tt.ok {
				t.Fatalf("parse(%q) = %v, want %v", tt.head, got, tt.ok)
			}
			if !tt.ok {
				return
			}
			if r.closeAfter != tt.close || r.contentLength != tt.n {
				t.Errorf("close %v, length %d; want %v, %d", r.closeAfter, r.contentLength, tt.close, tt.n)
			}
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(tt.head)))
			if err != nil {
				t.Fatalf("net/http refuses a head parse takes: %v", err)
			}
			if r.head.path != req.URL.Path || r.head.host != req.Host {
				t.Errorf("path %q, host %q; net/http: %q, %q", r.head.path, r.head.host, req.URL.Path, req.Host)
			}
			for name, got := range map[string]string{
				api.HeaderClient: r.head.client, api.HeaderClientVersion: r.head.clientVersion,
				api.HeaderClientRequire: r.head.require, api.HeaderContainer: r.head.container, api.HeaderHops: r.head.hops,
			} {
				if want := req.Header.Get(name); got != want {
					t.Errorf("%s %q; net/http: %q", name, got, want)
				}
			}
		})
	}
}

// TestRequestParseRelaysNoHopByHop: a call Serve takes carries none of the
// headers ReverseProxy strips (RFC 9110 §7.6.1) to its container: parse
// either refuses the call or drops the line.
func TestRequestParseRelaysNoHopByHop(t *testing.T) {
	for _, line := range []string{
		"Connection: close",
		"Connection: keep-alive",
		"Proxy-Connection: keep-alive",
		"Keep-Alive: timeout=5",
		"Proxy-Authenticate: Basic",
		"Proxy-Authorization: Basic eDp5",
		"Te: trailers",
		"Trailer: X-Sum",
		"Transfer-Encoding: chunked",
		"Upgrade: websocket",
	} {
		var r request
		if !r.parse([]byte(headWith(line))) {
			continue
		}
		for _, l := range r.lines {
			if text := string(r.raw[l.start:l.end]); text == line && l.kind != hdrDrop {
				t.Errorf("%q is relayed to the container", line)
			}
		}
	}
}

func TestHeadEnd(t *testing.T) {
	for in, want := range map[string]int{
		"":                                            0,
		"GET / HTTP/1.1\r\n":                          0,
		"GET / HTTP/1.1\r\nHost: a\r\n":               0,
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n":           len("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody":       len("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
		"GET / HTTP/1.1\nHost: a\n\nbody":             len("GET / HTTP/1.1\nHost: a\n\n"),
		"GET / HTTP/1.1\r\nHost: a\n\r\nbody":         len("GET / HTTP/1.1\r\nHost: a\n\r\n"),
		"\r\nGET / HTTP/1.1\r\n":                      2,
		"\nGET":                                       1,
		"GET / HTTP/1.1\r\nHost: a\r\n\r":             0,
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP": len("GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
	} {
		if got := headEnd([]byte(in)); got != want {
			t.Errorf("headEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

// FuzzRequestParse checks parse against net/http: a head parse takes,
// net/http reads too, and both read the same call from it.
func FuzzRequestParse(f *testing.F) {
	for _, seed := range []string{
		headWith(),
		requestHead("GET /greeter/hello HTTP/1.1", "Host: gw", "Coexist-Client: web", "Coexist-Client-Version: 1.2.0",
			"Coexist-Client-Require: >= 1.0, < 2.0", "Accept: */*", "User-Agent: sdk/1.0"),
		requestHead("POST /orders/new?id=7&x=a%20b HTTP/1.1", "Host: orders:7780", "Content-Length: 7",
			"Content-Type: application/json", "Coexist-Client-Version: 2.0.0", "Connection: keep-alive") + `{"n":1}`,
		requestHead("DELETE /pay/1 HTTP/1.1", "host:\t[::1]:80\t", "CONNECTION: Keep-Alive, close",
			"coexist-container: p1", "COEXIST-HOPS:  1 ", "x-forwarded-for: 10.0.0.1", "X-Forwarded-For: 10.0.0.2"),
		requestHead("GET /x HTTP/1.1", "Host: a", "Coexist-Client: web", "Coexist-Client: other",
			"Coexist-Hops: 0", "Coexist-Hops: 1"),
		requestHead("GET /x HTTP/1.1", "Host: a", "Coexist-Client:", "Coexist-Client: web",
			"Coexist-Container: \t", "Coexist-Container: g1", "Coexist-Client-Require: ", "coexist-client-require: >= 2"),
		requestHead("GET //greeter//x/./../y? HTTP/1.1", "Host: a", "Content-Length: 000"),
		requestHead("GET /greeter/x?%zz&a=%00 HTTP/1.1", "Host: a", "X-Obs: \x80\xff", "Coexist-Client-Version: \t1.0.0"),
		requestHead("get /x HTTP/1.1", "Host: A-B_C.d:0", "Connection:", "Connection: ,,close,"),
		requestHead("GET /x HTTP/1.1", "Host: a", "Transfer-Encoding: chunked") + "0\r\n\r\n",
		requestHead("GET /a%2Fb HTTP/1.1", "Host: a"),
		requestHead("GET /greeter/x;v=1/@:!$&'()*+,=~?q=a%2Fb&r=~/?:@ HTTP/1.1", "Host: a"),
		requestHead("GET /x?a=1;b=2&c={} HTTP/1.1", "Host: a", "User-Agent:"),
		requestHead("GET /x\"{}|^`<> HTTP/1.1", "Host: a"),
		requestHead("GET /x HTTP/1.1", "Host: a", "Connection: close", "Proxy-Authenticate: Basic", "Forwarded: for=x"),
		"GET /x HTTP/1.1\nHost: a\n\n",
		"GET /x HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
		"GET http://a/x HTTP/1.1\r\nHost: b\r\n\r\n",
		"CONNECT /x HTTP/1.1\r\nHost: a:443\r\n\r\n",
		requestHead("GET /x HTTP/1.1", "Host: a", "X-Long: "+strings.Repeat("v", 300)),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var r request
		r.parse(b) // any bytes, without panicking
		n := headEnd(b)
		if n == 0 {
			return
		}
		if m := headEnd(b[:n]); m != n {
			t.Fatalf("headEnd(%q) = %d, but %d of its own head", b, n, m)
		}
		head := b[:n]
		if !r.parse(head) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("parse takes %q, net/http refuses it: %v", head, err)
		}
		path, query, _ := strings.Cut(string(r.target), "?")
		check := func(what, got, want string) {
			t.Helper()
			if got != want {
				t.Errorf("%q: %s %q, net/http %q", head, what, got, want)
			}
		}
		check("method", string(r.method), req.Method)
		check("path", r.head.path, req.URL.Path)
		check("path", path, req.URL.Path)
		check("query", query, req.URL.RawQuery)
		check("Host", r.head.host, req.Host)
		check(api.HeaderClient, r.head.client, req.Header.Get(api.HeaderClient))
		check(api.HeaderClientVersion, r.head.clientVersion, req.Header.Get(api.HeaderClientVersion))
		check(api.HeaderClientRequire, r.head.require, req.Header.Get(api.HeaderClientRequire))
		check(api.HeaderContainer, r.head.container, req.Header.Get(api.HeaderContainer))
		check(api.HeaderHops, r.head.hops, req.Header.Get(api.HeaderHops))
		if r.contentLength != req.ContentLength {
			t.Errorf("%q: length %d, net/http %d", head, r.contentLength, req.ContentLength)
		}
		if r.closeAfter != req.Close {
			t.Errorf("%q: close %v, net/http %v", head, r.closeAfter, req.Close)
		}
		// The lines relayed are the head's own header lines, whole.
		lines := 0
		for _, l := range r.lines {
			line := r.raw[l.start:l.end]
			if l.nameLen <= 0 || l.nameLen >= len(line) || line[l.nameLen] != ':' {
				t.Fatalf("%q: line %q with a name of %d bytes", head, line, l.nameLen)
			}
			lines++
		}
		if want := bytes.Count(head, []byte("\r\n")) - 2; lines != want {
			t.Errorf("%q: %d header lines, want %d", head, lines, want)
		}

		// What Serve sends the container is what ServeHTTP's ReverseProxy
		// sends it: the same target, and the same headers but those the
		// gateway sets itself (X-Forwarded-*, Forwarded).
		uri, header := reverseProxied(t, req)
		check("target sent", string(r.target), uri)
		sent := http.Header{}
		for _, l := range r.lines {
			line := r.raw[l.start:l.end]
			name := http.CanonicalHeaderKey(string(line[:l.nameLen]))
			if l.kind == hdrDrop || name == "Host" {
				continue
			}
			sent[name] = append(sent[name], string(trimOWS(line[l.nameLen+1:])))
		}
		for _, name := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
			if v, ok := sent[name]; ok {
				t.Errorf("%q: %s %q sent as the caller's", head, name, v)
			}
		}
		if v, ok := header["User-Agent"]; ok && len(v) == 1 && v[0] == "" && sent["User-Agent"] == nil {
			delete(header, "User-Agent") // ReverseProxy's way of sending none
		}
		if !reflect.DeepEqual(sent, header) {
			t.Errorf("%q: headers sent\n%v\nReverseProxy sends\n%v", head, sent, header)
		}
	})
}

// reverseProxied returns the request target and the headers ReverseProxy,
// as the gateway sets it up, sends a local container for req.
func reverseProxied(t *testing.T, req *http.Request) (string, http.Header) {
	t.Helper()
	var (
		uri    string
		header http.Header
	)
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = "http", "container"
		},
		Transport: roundTripFunc(func(out *http.Request) (*http.Response, error) {
			uri, header = out.URL.RequestURI(), out.Header.Clone()
			return &http.Response{StatusCode: http.StatusNoContent, Header: http.Header{}, Body: http.NoBody, Request: out}, nil
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	p.ServeHTTP(httptest.NewRecorder(), req)
	if header == nil {
		t.Fatalf("ReverseProxy sent nothing for %v", req)
	}
	return uri, header
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
