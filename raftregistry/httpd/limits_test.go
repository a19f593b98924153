package httpd

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/internal/netlimit"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// TestMetricsLabelsBounded: requests with methods of the caller's own
// making, on routes and off them, with or without a token, add no label
// value: the method label takes a fixed set, the code its class.
func TestMetricsLabelsBounded(t *testing.T) {
	e := newEnv(t)
	for i := range 50 {
		m := fmt.Sprintf("X%040d", i)
		e.do(m, "/v1/services", "", "")
		e.do(m, "/v1/nowhere", readSecret, "")
	}
	r := e.do("GET", "/v1/metrics", readSecret, "")
	if strings.Contains(r.body, "X0000") {
		t.Errorf("a caller's method is a label value:\n%s", r.body)
	}
	labels := regexp.MustCompile(`coexist_http_request[a-z_]*\{[^}]*\}`).FindAllString(r.body, -1)
	method := regexp.MustCompile(`method="([^"]*)"`)
	code := regexp.MustCompile(`code="([^"]*)"`)
	for _, l := range labels {
		if m := method.FindStringSubmatch(l); m != nil && !map[string]bool{"GET": true, "PUT": true, "POST": true, "DELETE": true, "HEAD": true, "other": true}[m[1]] {
			t.Errorf("method label %q outside the fixed set in %s", m[1], l)
		}
		if c := code.FindStringSubmatch(l); c != nil && !regexp.MustCompile(`^[1-5]xx$`).MatchString(c[1]) {
			t.Errorf("code label %q is not a status class in %s", c[1], l)
		}
	}
	if !strings.Contains(r.body, `coexist_http_requests_total{code="4xx",method="other",route="unmatched"} 100`) {
		t.Errorf("requests of unknown methods not counted as other:\n%s", r.body)
	}
}

// limitedEnv serves the env's API on a listener of its own within lim, as
// the server command does; it returns its address.
func limitedEnv(t *testing.T, e *testEnv, lim netlimit.Limits) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, lln := e.srv.HTTPServer(ln, lim, false)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

// rawDial opens a caller's connection, with a deadline no test waits out.
func rawDial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	return nc, bufio.NewReader(nc)
}

// closedWithin checks that the server closes nc within d, whatever it
// answers first.
func closedWithin(t *testing.T, nc net.Conn, br *bufio.Reader, d time.Duration) {
	t.Helper()
	start := time.Now()
	nc.SetReadDeadline(start.Add(d))
	if _, err := io.Copy(io.Discard, br); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection still open after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

var testLimits = netlimit.Limits{
	MaxConns:       4,
	MaxHeaderBytes: 8 << 10,
	HeadTimeout:    200 * time.Millisecond,
	IdleTimeout:    time.Second,
	BodyTimeout:    300 * time.Millisecond,
	WriteTimeout:   300 * time.Millisecond,
}

// TestHTTPServerLimits: the API's listener closes a connection that sends
// nothing, half a head, or a body that stalls (read by the handler or
// left unread), within its timeouts; refuses a head over its size; and
// still answers a blocking query that waits longer than all of them.
func TestHTTPServerLimits(t *testing.T) {
	e := newEnv(t)
	addr := limitedEnv(t, e, testLimits)
	auth := "Authorization: Bearer " + opSecret + "\r\n"
	for _, tc := range []struct{ name, send string }{
		{"nothing", ""},
		{"half a head", "GET /v1/services HTTP/1.1\r\nHost: r\r\n"},
		{"a body that stalls", "PUT /v1/services/web/versions/1.0.0 HTTP/1.1\r\nHost: r\r\n" + auth +
			"Content-Length: 100\r\n\r\n{\"clients\":"},
		{"a declared body that never comes", "GET /v1/services HTTP/1.1\r\nHost: r\r\n" + auth + "Content-Length: 10\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, br := rawDial(t, addr)
			io.WriteString(nc, tc.send)
			closedWithin(t, nc, br, 2*time.Second)
		})
	}

	t.Run("head too large", func(t *testing.T) {
		nc, br := rawDial(t, addr)
		io.WriteString(nc, "GET /v1/services HTTP/1.1\r\nHost: r\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("code %d, want 431", resp.StatusCode)
		}
	})

	t.Run("blocking query", func(t *testing.T) {
		idx := e.fake.st.Index(state.TableNodes)
		start := time.Now()
		r := doURL(t, http.DefaultClient, "GET", "http://"+addr+"/v1/nodes?index="+u(idx)+"&wait=1s", readSecret, "", nil)
		if r.code != http.StatusOK || time.Since(start) < 900*time.Millisecond {
			t.Errorf("blocking query: %d after %v; want 200 after its wait", r.code, time.Since(start))
		}
	})
}

// TestHTTPServerMaxConns: over its cap, the API's listener answers a new
// connection 503 at once and closes it; a closed connection frees its
// place.
func TestHTTPServerMaxConns(t *testing.T) {
	e := newEnv(t)
	addr := limitedEnv(t, e, testLimits)
	var held []net.Conn
	for range testLimits.MaxConns {
		nc, br := rawDial(t, addr)
		io.WriteString(nc, "GET /v1/status/leader HTTP/1.1\r\nHost: r\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("within the cap: %v %v", resp, err)
		}
		held = append(held, nc)
	}
	nc, br := rawDial(t, addr)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("over the cap: %v %v; want a 503 at once", resp, err)
	}
	closedWithin(t, nc, br, time.Second)
	held[0].Close()
	eventually(t, "a place to free", func() bool {
		r, err := send(http.DefaultClient, "GET", "http://"+addr+"/v1/status/leader", "", "", nil)
		return err == nil && r.code == http.StatusOK
	})
}
