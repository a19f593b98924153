package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/netlimit"
	"github.com/coexist-dev/coexist/routing"
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
	written := make(chan struct{}, 1) // the stray bytes are sent
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
		written <- struct{}{}
		return err
	})
	// On loopback, bytes written are at the other end when the write
	// returns. The next call comes 3 ms later: net/http's Transport, whose
	// connection reader sees them meanwhile, then drops the connection
	// too; Serve checks at once, before any reuse.
	strayIn := func() {
		t.Helper()
		select {
		case <-written:
		case <-time.After(rawTimeout):
			t.Fatal("the container sent no stray bytes")
		}
		time.Sleep(3 * time.Millisecond)
	}
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
			strayIn()
			checkB(i, dialRaw(t, addr))

			// The same caller's next call, on its kept upstream connection.
			c := dialRaw(t, addr)
			c.write(callHeadOf(call.method, call.path))
			c.read(call.method)
			strayIn()
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

// TestGatewayMetricsLabelsBounded: calls with client versions, client names
// and service names of the callers' own making add no label value: a
// label takes a fixed set of values, or a service and version the table
// declares.
func TestGatewayMetricsLabelsBounded(t *testing.T) { eachMode(t, testGatewayMetricsLabelsBounded) }

func testGatewayMetricsLabelsBounded(t *testing.T, mode string) {
	_, addr := serveOneIn(t, mode, backend(t, "c1").Listener.Addr().String())
	c := dialRaw(t, addr)
	for i := range 30 {
		c.write(callHeadOf("GET", "/svc/x", api.HeaderClientVersion+": 7.7."+strconv.Itoa(700+i), api.HeaderClient+": caller"+strconv.Itoa(700+i)))
		if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, resp.StatusCode, body)
		}
		c.write(callHeadOf("GET", "/nosuch"+strconv.Itoa(700+i)+"/x", api.HeaderClientVersion+": 8.8."+strconv.Itoa(700+i)))
		if resp, body := c.read("GET"); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("call %d to an unknown service: %d %s", i, resp.StatusCode, body)
		}
	}
	c.write("GET " + MetricsPath + " HTTP/1.1\r\nHost: gateway\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %s", resp.StatusCode, body)
	}
	for _, caller := range []string{"7.7.7", "8.8.7", "caller7", "nosuch7"} {
		if strings.Contains(string(body), caller) {
			t.Errorf("a caller's %q is a label value", caller)
		}
	}
	for _, want := range []string{
		`coexist_gateway_requests_total{code="2xx",service="svc",version="1.0.0"} 30`,
		`coexist_gateway_requests_total{code="4xx",service="",version=""} 30`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}
}

// TestGatewayRefusesLongClientHeaders: a header that names the caller or
// its chosen container longer than 128 bytes is refused with 400 naming
// it, before anything of it is kept.
func TestGatewayRefusesLongClientHeaders(t *testing.T) {
	eachMode(t, testGatewayRefusesLongClientHeaders)
}

func testGatewayRefusesLongClientHeaders(t *testing.T, mode string) {
	gw, addr := serveOneIn(t, mode, backend(t, "c1").Listener.Addr().String())
	c := dialRaw(t, addr)
	long := strings.Repeat("a", maxClientHeader+1)
	for _, name := range []string{api.HeaderClient, api.HeaderClientVersion, api.HeaderClientRequire, api.HeaderContainer, api.HeaderHops} {
		head := "GET /svc/x HTTP/1.1\r\nHost: gateway\r\n" + name + ": " + long + "\r\n"
		if name != api.HeaderClientVersion {
			head += api.HeaderClientVersion + ": 1.0.0\r\n"
		}
		c.write(head + "\r\n")
		resp, body := c.read("GET")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), name) || !strings.Contains(string(body), "128") {
			t.Errorf("%s of %d bytes: %d %s; want 400 naming it and the limit", name, len(long), resp.StatusCode, body)
		}
	}
	c.write(callHeadOf("GET", "/svc/x", api.HeaderClient+": "+long[:maxClientHeader]))
	if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK {
		t.Errorf("%s of %d bytes: %d %s; want 200", api.HeaderClient, maxClientHeader, resp.StatusCode, body)
	}
	gw.clientsMu.RLock()
	defer gw.clientsMu.RUnlock()
	for k := range gw.clients {
		if len(k.name) > maxClientHeader || len(k.version) > maxClientHeader || len(k.require) > maxClientHeader {
			t.Errorf("parsed-client cache holds a key of %d+%d+%d bytes", len(k.name), len(k.version), len(k.require))
		}
	}
}

// TestGatewayMetricsNeedToken: the gateway's /v1/metrics answers only a
// caller its Authorize admits, and is not served without one.
func TestGatewayMetricsNeedToken(t *testing.T) { eachMode(t, testGatewayMetricsNeedToken) }

func testGatewayMetricsNeedToken(t *testing.T, mode string) {
	table := routing.NewTable(nil, nil, nil)
	open, err := NewGateway(GatewayConfig{NodeID: "n1", Table: func() *routing.Table { return table }})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	serveGateway(t, mode, open, ln)
	c := dialRaw(t, ln.Addr().String())
	c.write("GET " + MetricsPath + " HTTP/1.1\r\nHost: gateway\r\n\r\n")
	if resp, body := c.read("GET"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without Authorize: %d %.80s; want 404", resp.StatusCode, body)
	}

	gw, err := NewGateway(GatewayConfig{NodeID: "n1", Table: func() *routing.Table { return table },
		Authorize: func(_ context.Context, secret string) error {
			if secret != "good-token" {
				return ErrUnauthorized
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln = listen(t)
	serveGateway(t, mode, gw, ln)
	c = dialRaw(t, ln.Addr().String())
	for _, tt := range []struct {
		auth string
		code int
	}{
		{"", http.StatusUnauthorized},
		{"Authorization: Bearer bad-token\r\n", http.StatusUnauthorized},
		{"Authorization: Bearer good-token\r\n", http.StatusOK},
	} {
		c.write("GET " + MetricsPath + " HTTP/1.1\r\nHost: gateway\r\n" + tt.auth + "\r\n")
		resp, body := c.read("GET")
		if resp.StatusCode != tt.code {
			t.Errorf("%q: %d %.80s; want %d", tt.auth, resp.StatusCode, body, tt.code)
		}
		if resp.StatusCode == http.StatusUnauthorized && strings.Contains(string(body), "coexist_gateway") {
			t.Errorf("%q: refused with the metrics in the body", tt.auth)
		}
	}
}

// TestRegistryTokens: the agent's check of metrics tokens asks the
// registry once per token a while, refuses what the registry refuses, and
// bounds the lookups in progress.
func TestRegistryTokens(t *testing.T) {
	now := time.Unix(1000, 0)
	var asked atomic.Int32
	block := make(chan struct{})
	rt := newRegistryTokens(func(ctx context.Context, secret string) (string, error) {
		asked.Add(1)
		switch secret {
		case "good":
			return api.RoleRead, nil
		case "slow":
			<-block
			return api.RoleRead, nil
		case "down":
			return "", errors.New("connection refused")
		}
		return "", &api.StatusError{Code: http.StatusUnauthorized, Body: "unknown token"}
	}, func() time.Time { return now })
	ctx := context.Background()
	if err := rt.Authorize(ctx, "good"); err != nil {
		t.Fatal(err)
	}
	if err := rt.Authorize(ctx, "good"); err != nil || asked.Load() != 1 {
		t.Errorf("second check: %v after %d lookups; want nil after 1", err, asked.Load())
	}
	now = now.Add(tokenTTL)
	if err := rt.Authorize(ctx, "good"); err != nil || asked.Load() != 2 {
		t.Errorf("check after the TTL: %v after %d lookups; want nil after 2", err, asked.Load())
	}
	for _, bad := range []string{"", "wrong", strings.Repeat("x", maxTokenLen+1)} {
		if err := rt.Authorize(ctx, bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("token of %d bytes: %v, want ErrUnauthorized", len(bad), err)
		}
	}
	if err := rt.Authorize(ctx, "down"); err == nil || errors.Is(err, ErrUnauthorized) {
		t.Errorf("registry down: %v; want an error other than ErrUnauthorized", err)
	}
	var wg sync.WaitGroup
	for range maxTokenChecks {
		wg.Go(func() { rt.Authorize(ctx, "slow") })
	}
	waitFor(t, "the lookups in progress", func() bool { return len(rt.sem) == maxTokenChecks })
	if err := rt.Authorize(ctx, "another"); !errors.Is(err, errTokenChecksBusy) {
		t.Errorf("a lookup beyond %d at once: %v, want errTokenChecksBusy", maxTokenChecks, err)
	}
	close(block)
	wg.Wait()
}

// shortLimits are limits a test can wait out.
var shortLimits = netlimit.Limits{
	MaxConns:     4,
	HeadTimeout:  200 * time.Millisecond,
	IdleTimeout:  time.Second,
	BodyTimeout:  400 * time.Millisecond,
	WriteTimeout: 300 * time.Millisecond,
}

// closedWithin checks that the gateway closes c within d, whatever it
// answers first.
func (c *rawConn) closedWithin(d time.Duration) {
	c.t.Helper()
	start := time.Now()
	c.nc.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, c.br)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("connection still open after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
}

// TestGatewayHeadTimeout: a connection that sends nothing, or half a head,
// is closed within the head timeout, not held for minutes.
func TestGatewayHeadTimeout(t *testing.T) {
	_, addr := serveLimited(t, modeServe, backend(t, "c1").Listener.Addr().String(), shortLimits)
	silent := dialRaw(t, addr)
	silent.closedWithin(time.Second)

	half := dialRaw(t, addr)
	half.write("GET /svc/x HTTP/1.1\r\nHost: gateway\r\n")
	half.closedWithin(time.Second)

	// After a call, the next one's first byte may take the idle timeout;
	// half a head then takes the head timeout.
	kept := dialRaw(t, addr)
	kept.write(callHeadOf("GET", "/svc/x"))
	kept.read("GET")
	time.Sleep(2 * shortLimits.HeadTimeout)
	kept.write("GET /svc/y HTTP/1.1\r\n")
	kept.closedWithin(time.Second)
}

// TestGatewayBodyStall: a call whose declared body stops coming closes
// its connection within the body timeout; one whose body comes slowly but
// steadily is served, however long it takes.
func TestGatewayBodyStall(t *testing.T) { eachMode(t, testGatewayBodyStall) }

func testGatewayBodyStall(t *testing.T, mode string) {
	_, addr := serveLimited(t, mode, backend(t, "c1").Listener.Addr().String(), shortLimits)
	for _, path := range []string{"/svc/x", "/nosuch/x"} { // forwarded, refused
		c := dialRaw(t, addr)
		c.write(callHeadOf("POST", path, "Content-Length: 100") + "0123456789")
		c.closedWithin(2 * time.Second)
	}

	c := dialRaw(t, addr)
	c.nc.SetDeadline(time.Now().Add(5 * time.Second))
	body := "0123456789"
	c.write(callHeadOf("POST", "/svc/x", "Content-Length: "+strconv.Itoa(len(body))))
	for i := range len(body) { // 1 s in all, more than the body timeout
		time.Sleep(100 * time.Millisecond)
		c.write(body[i : i+1])
	}
	resp, b := c.read("POST")
	if resp.StatusCode != http.StatusOK || decodeEcho(t, b).Body != body {
		t.Fatalf("slow body: %d %s", resp.StatusCode, b)
	}
}

// TestGatewayWriteTimeout: a caller that reads nothing of a long answer
// does not hold the call: the gateway gives up within the write timeout
// and closes the container's connection, on its own HTTP/1.1 and on a
// connection handed to net/http alike.
func TestGatewayWriteTimeout(t *testing.T) {
	gaveUp := make(chan time.Time, 2)
	endpoint := rawBackendFunc(t, func(r *http.Request, w io.Writer) error {
		const size = 256 << 20
		io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		chunk := make([]byte, 1<<20)
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				gaveUp <- time.Now()
				return err
			}
		}
		return nil
	})
	_, addr := serveLimited(t, modeServe, endpoint, shortLimits)
	for _, head := range []string{
		callHeadOf("GET", "/svc/x"),
		// Chunked: net/http answers it.
		callHeadOf("POST", "/svc/x", "Transfer-Encoding: chunked") + "0\r\n\r\n",
	} {
		c := dialRaw(t, addr)
		c.nc.(*net.TCPConn).SetReadBuffer(4096)
		c.write(head)
		select {
		case <-gaveUp:
		case <-time.After(5 * time.Second):
			t.Fatalf("%q: the gateway still writes to a caller that reads nothing", head)
		}
	}
}

// TestGatewayMaxConns: over its cap of connections, a listener answers a
// new one at once with 503 safe to retry and closes it; connections handed
// to net/http count too, and a closed one frees its place.
func TestGatewayMaxConns(t *testing.T) {
	_, addr := serveLimited(t, modeServe, backend(t, "c1").Listener.Addr().String(), shortLimits)
	var held []*rawConn
	for i := range shortLimits.MaxConns {
		c := dialRaw(t, addr)
		if i%2 == 0 {
			c.write(callHeadOf("GET", "/svc/x"))
		} else {
			c.write("GET " + MetricsPath + " HTTP/1.1\r\nHost: gateway\r\n\r\n") // handed over
		}
		if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK {
			t.Fatalf("connection %d: %d %s", i, resp.StatusCode, body)
		}
		held = append(held, c)
	}
	over := dialRaw(t, addr)
	resp, body, err := over.tryRead("GET")
	if err != nil {
		t.Fatalf("connection over the cap: %v; want an answer at once", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(api.HeaderRetry) != "safe" {
		t.Errorf("connection over the cap: %d %s %s; want 503, safe to retry", resp.StatusCode, resp.Header, body)
	}
	over.expectClosed()

	for _, i := range []int{0, 1} { // one of Serve's own, one handed over
		held[i].nc.Close()
		waitFor(t, "a place to free", func() bool {
			c := dialRaw(t, addr)
			defer c.nc.Close()
			c.write(callHeadOf("GET", "/svc/x"))
			resp, _, err := c.tryRead("GET")
			return err == nil && resp.StatusCode == http.StatusOK
		})
	}
}
