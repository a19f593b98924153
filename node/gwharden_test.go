package node

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// Regression tests of a gateway facing callers and containers that do not
// play by the rules (issue 10): what one of them sends must not reach
// another, nor hold the gateway.

// readHeadLines reads an answer's head as raw lines, up to its empty line.
func (c *rawConn) readHeadLines() []string {
	c.t.Helper()
	var lines []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read an answer's head: %v (so far %q)", err, lines)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			return lines
		}
		lines = append(lines, line)
	}
}

// TestGatewayStripsContainerRetry: a container's own Coexist-Retry never
// reaches the caller: a 503 of the service may have done half its work, and
// the SDK would send a POST again on its word (docs/design.md §4).
func TestGatewayStripsContainerRetry(t *testing.T) { eachMode(t, testGatewayStripsContainerRetry) }

func testGatewayStripsContainerRetry(t *testing.T, mode string) {
	endpoint := rawBackend(t, func(*http.Request) string {
		return "HTTP/1.1 503 Service Unavailable\r\n" + api.HeaderRetry + ": safe\r\ncoexist-retry: safe\r\nContent-Length: 4\r\n\r\nbusy"
	})
	_, addr := serveOneIn(t, mode, endpoint)
	c := dialRaw(t, addr)
	for i := range 2 {
		c.write(callHeadOf("POST", "/svc/pay", "Content-Length: 2") + "{}")
		resp, body := c.read("POST")
		if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "busy" {
			t.Fatalf("call %d: %d %q, want the container's 503 busy", i, resp.StatusCode, body)
		}
		if v, ok := resp.Header[api.HeaderRetry]; ok {
			t.Errorf("call %d: the container's %s: %q reached the caller", i, api.HeaderRetry, v)
		}
	}
}

// TestGatewayInterimAnswerHasNoLength: a 1xx answer is relayed without a
// Content-Length, which it cannot have (RFC 9110 §8.6).
func TestGatewayInterimAnswerHasNoLength(t *testing.T) {
	eachMode(t, testGatewayInterimAnswerHasNoLength)
}

func testGatewayInterimAnswerHasNoLength(t *testing.T, mode string) {
	endpoint := rawBackend(t, func(*http.Request) string {
		return "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nContent-Length: 5\r\n" + api.HeaderRetry + ": safe\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
	})
	_, addr := serveOneIn(t, mode, endpoint)
	c := dialRaw(t, addr)
	c.write(callHeadOf("GET", "/svc/x"))
	lines := c.readHeadLines()
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "HTTP/1.1 103") {
		t.Fatalf("first answer %q, want a 103", lines)
	}
	for _, l := range lines[1:] {
		if name, _, _ := strings.Cut(l, ":"); strings.EqualFold(name, "Content-Length") ||
			mode == modeServe && strings.EqualFold(name, api.HeaderRetry) {
			t.Errorf("interim answer relayed with %q", l)
		}
	}
	if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK || string(body) != "final" {
		t.Fatalf("final answer %d %q, want 200 final", resp.StatusCode, body)
	}
}

// TestGatewayDropsUnsolicitedBytes: a container that writes a body after
// its answer to HEAD, or after a 204, a little later than the head: the
// next call on its connection, a few milliseconds on, gets its own answer,
// never those bytes, whether it comes on the same caller's connection or on
// another's.
func TestGatewayDropsUnsolicitedBytes(t *testing.T) { eachMode(t, testGatewayDropsUnsolicitedBytes) }

func testGatewayDropsUnsolicitedBytes(t *testing.T, mode string) {
	const stray = "secret-of-A"
	endpoint := rawBackendFunc(t, func(r *http.Request, w io.Writer) error {
		var head string
		switch {
		case r.Method == http.MethodHead:
			head = "HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(stray)) + "\r\n\r\n"
		case r.URL.Path == "/svc/204":
			head = "HTTP/1.1 204 No Content\r\n\r\n"
		default:
			_, err := io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")
			return err
		}
		if _, err := io.WriteString(w, head); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
		_, err := io.WriteString(w, stray)
		return err
	})
	_, addr := serveOneIn(t, mode, endpoint)
	checkB := func(i int, b *rawConn) {
		t.Helper()
		b.write(callHeadOf("GET", "/svc/b"))
		resp, body, err := b.tryRead("GET")
		if err != nil {
			t.Fatalf("round %d: caller B: %v", i, err)
		}
		if resp.StatusCode != http.StatusOK || string(body) != "mine" || strings.Contains(string(body), stray) {
			t.Fatalf("round %d: caller B got %d %q, want its own 200 mine", i, resp.StatusCode, body)
		}
	}
	for i := range 10 {
		for _, call := range []struct{ method, path string }{{"HEAD", "/svc/a"}, {"GET", "/svc/204"}} {
			// A's connection closes after its answer: its upstream
			// connection goes to the pool, and B's new connection takes it.
			a := dialRaw(t, addr)
			a.write(callHeadOf(call.method, call.path, "Connection: close"))
			a.read(call.method)
			a.expectClosed()
			time.Sleep(3 * time.Millisecond) // the stray bytes are in
			checkB(i, dialRaw(t, addr))

			// The same caller's next call, on its kept upstream connection.
			c := dialRaw(t, addr)
			c.write(callHeadOf(call.method, call.path))
			c.read(call.method)
			time.Sleep(3 * time.Millisecond)
			checkB(i, c)
		}
	}
}

// TestGatewayErrorsQuoteNothingUpstream: a gateway's error answer names the
// container, never its address nor the bytes it sent.
func TestGatewayErrorsQuoteNothingUpstream(t *testing.T) {
	eachMode(t, testGatewayErrorsQuoteNothingUpstream)
}

func testGatewayErrorsQuoteNothingUpstream(t *testing.T, mode string) {
	const secret = "secret-of-A"
	endpoint := rawBackend(t, func(*http.Request) string {
		return "HTTP/1.1 2x0 " + secret + "\r\n\r\n"
	})
	_, addr := serveOneIn(t, mode, endpoint)
	c := dialRaw(t, addr)
	c.write(callHeadOf("GET", "/svc/x"))
	resp, body := c.read("GET")
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("code %d, body %q; want 502", resp.StatusCode, body)
	}
	_, port, _ := net.SplitHostPort(endpoint)
	for _, leak := range []string{secret, endpoint, ":" + port} {
		if strings.Contains(string(body), leak) {
			t.Errorf("502 body %q quotes %q", body, leak)
		}
	}
	if !strings.Contains(string(body), `c1`) {
		t.Errorf("502 body %q does not name the container", body)
	}

	dead := deadAddr(t)
	_, addr = serveOneIn(t, mode, dead)
	c = dialRaw(t, addr)
	c.write(callHeadOf("GET", "/svc/x"))
	resp, body = c.read("GET")
	_, port, _ = net.SplitHostPort(dead)
	if resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(body), ":"+port) {
		t.Errorf("unreachable container: %d %q; want a 503 without its address", resp.StatusCode, body)
	}
}
