package node

import (
	"net/http"
	"strings"
	"testing"

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
