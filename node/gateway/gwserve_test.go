package gateway

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
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

// The wire of Serve: calls written as bytes on a raw connection, answers
// read with http.ReadResponse.

// --- fixtures ---------------------------------------------------------------

// rawConn is a caller's connection to a gateway.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

// rawTimeout bounds every test's connection, so that a gateway that never
// answers fails the test instead of hanging it.
const rawTimeout = 2 * time.Second

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(rawTimeout))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read reads the answer to a call of method, and its whole body.
func (c *rawConn) read(method string) (*http.Response, []byte) {
	c.t.Helper()
	resp, body, err := c.tryRead(method)
	if err != nil {
		c.t.Fatalf("read the answer to %s: %v", method, err)
	}
	return resp, body
}

func (c *rawConn) tryRead(method string) (*http.Response, []byte, error) {
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

// expectClosed checks that the gateway closed the connection, with nothing
// more to read.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	b, err := c.br.ReadByte()
	switch {
	case err == nil:
		c.t.Errorf("connection still open: read %q", b)
	case !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET):
		c.t.Errorf("connection not closed: %v", err)
	}
}

// callHeadOf returns the head of a call with a Host and a client version,
// then each of lines ("Name: value").
func callHeadOf(method, target string, lines ...string) string {
	var b strings.Builder
	b.WriteString(method + " " + target + " HTTP/1.1\r\nHost: gateway\r\n" + api.HeaderClientVersion + ": 1.0.0\r\n")
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

func addrOf(url string) string { return strings.TrimPrefix(url, "http://") }

func decodeEcho(t *testing.T, body []byte) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an echo: %q: %v", body, err)
	}
	return e
}

// serveOne serves, with Serve, one service "svc" whose one container c1
// (svc@1.0.0, any client) is at endpoint; it returns the gateway and its
// address.
func serveOne(t *testing.T, endpoint string) (*Gateway, string) {
	t.Helper()
	return serveOneIn(t, modeServe, endpoint)
}

// serveOneIn is serveOne, with the gateway answering calls in mode.
func serveOneIn(t *testing.T, mode, endpoint string) (*Gateway, string) {
	t.Helper()
	return serveLimited(t, mode, endpoint, netlimit.Limits{})
}

// serveLimited is serveOneIn, with the gateway's listener bounded by lim.
func serveLimited(t *testing.T, mode, endpoint string, lim netlimit.Limits) (*Gateway, string) {
	t.Helper()
	ln := listen(t)
	table := routing.NewTable(
		[]api.Service{{Name: "svc", Versions: []api.ServiceVersion{sver("svc", "1.0.0", ">= 0.0.1", api.VersionActive)}}},
		[]api.Container{ctrAt("c1", "n1", endpoint, "svc@1.0.0")},
		[]api.Node{{ID: "n1", Gateway: ln.Addr().String(), Status: api.NodeReady}},
	)
	gw, err := NewGateway(GatewayConfig{NodeID: "n1", Table: func() *routing.Table { return table },
		Authorize: admitAll, Limits: lim, Engine: engineOf(mode)})
	if err != nil {
		t.Fatal(err)
	}
	serveGateway(t, mode, gw, ln)
	return gw, ln.Addr().String()
}

// handlerBackend starts a container stand-in running h.
func handlerBackend(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// rawBackend starts a container stand-in that reads each call, body
// included, and writes the bytes answer returns for it as they are.
func rawBackend(t *testing.T, answer func(r *http.Request) string) string {
	t.Helper()
	return rawBackendFunc(t, func(r *http.Request, w io.Writer) error {
		_, err := io.WriteString(w, answer(r))
		return err
	})
}

// rawBackendFunc starts a container stand-in that reads each call, body
// included, and lets answer write to the connection what it likes.
func rawBackendFunc(t *testing.T, answer func(r *http.Request, w io.Writer) error) string {
	t.Helper()
	ln := listen(t)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  = map[net.Conn]struct{}{}
		closed bool
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				nc.Close()
				return
			}
			conns[nc] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				br := bufio.NewReader(nc)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					if _, err := io.Copy(io.Discard, r.Body); err != nil {
						return
					}
					if err := answer(r, nc); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

func checkNotHanded(t *testing.T, gws ...*Gateway) {
	t.Helper()
	for _, gw := range gws {
		if gw.cfg.Engine == EngineStd {
			continue // net/http answers every call
		}
		if n := handedOver(gw); n != 0 {
			t.Errorf("%v connections handed to net/http, want 0: Serve answers these calls itself", n)
		}
	}
}

// --- raw wire ---------------------------------------------------------------

// TestServePipelined: two calls written at once are answered in order, on
// the same connection.
func TestServePipelined(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	c.write(callHeadOf("GET", "/greeter/first") + callHeadOf("GET", "/greeter/second?n=2"))
	for _, want := range []string{"/greeter/first", "/greeter/second"} {
		resp, body := c.read("GET")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: code %d, body %s", want, resp.StatusCode, body)
		}
		if got := resp.Header.Values(api.HeaderServedBy); len(got) != 1 || got[0] != "greeter@1.0.0 g1" {
			t.Errorf("%s: %s = %q, want [greeter@1.0.0 g1]", want, api.HeaderServedBy, got)
		}
		if e := decodeEcho(t, body); e.Path != want {
			t.Errorf("answers out of order: got the answer to %q, want %q", e.Path, want)
		}
		if resp.Close {
			t.Errorf("%s: the answer closes the connection", want)
		}
	}
	checkNotHanded(t, cl.n1)
}

// TestServeHeadInParts: a head that comes in several writes is still read
// whole, and answered by Serve.
func TestServeHeadInParts(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	h := callHeadOf("POST", "/greeter/parts", "Content-Length: 4")
	for _, part := range []string{h[:3], h[3:20], h[20 : len(h)-1], h[len(h)-1:] + "bo", "dy"} {
		c.write(part)
		time.Sleep(2 * time.Millisecond)
	}
	resp, body := c.read("POST")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code %d, body %s", resp.StatusCode, body)
	}
	if e := decodeEcho(t, body); e.Path != "/greeter/parts" || e.Body != "body" {
		t.Errorf("container received %s with body %q", e.Path, e.Body)
	}
	checkNotHanded(t, cl.n1)
}

// TestServeConnectionClose: a caller's Connection: close is answered with
// Connection: close, and the connection is closed after the answer.
func TestServeConnectionClose(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	c.write(callHeadOf("GET", "/greeter/x", "Connection: close"))
	resp, body := c.read("GET")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code %d, body %s", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("the answer lacks Connection: close")
	}
	if e := decodeEcho(t, body); e.Container != "g1" {
		t.Errorf("served by %q, want g1", e.Container)
	}
	c.expectClosed()
	checkNotHanded(t, cl.n1)
}

// TestServeDropsHopByHopAnswerHeaders: the hop-by-hop headers of a
// container's answer, and those its Connection header names, stay between
// the container and the gateway, though the answer keeps its framing; the
// container's own Coexist-Served-By is replaced by the gateway's.
func TestServeDropsHopByHopAnswerHeaders(t *testing.T) {
	endpoint := rawBackend(t, func(*http.Request) string {
		return "HTTP/1.1 200 OK\r\n" +
			"Connection: x-secret, keep-alive, content-length\r\n" +
			"X-Secret: hidden\r\n" +
			"Keep-Alive: timeout=5\r\n" +
			"Proxy-Connection: keep-alive\r\n" +
			"Coexist-Served-By: spoofed\r\n" +
			"X-Kept: yes\r\n" +
			"Content-Length: 2\r\n\r\nok"
	})
	gw, addr := serveOne(t, endpoint)
	c := dialRaw(t, addr)
	for i := range 2 { // the second on the kept upstream connection
		c.write(callHeadOf("GET", "/svc/x"))
		resp, body := c.read("GET")
		if resp.StatusCode != http.StatusOK || string(body) != "ok" {
			t.Fatalf("call %d: code %d, body %q", i, resp.StatusCode, body)
		}
		for _, h := range []string{"Connection", "X-Secret", "Keep-Alive", "Proxy-Connection"} {
			if v, ok := resp.Header[h]; ok {
				t.Errorf("call %d: hop-by-hop header relayed: %s: %q", i, h, v)
			}
		}
		if got := resp.Header.Values(api.HeaderServedBy); len(got) != 1 || got[0] != "svc@1.0.0 c1" {
			t.Errorf("call %d: %s = %q, want [svc@1.0.0 c1]", i, api.HeaderServedBy, got)
		}
		if resp.Header.Get("X-Kept") != "yes" {
			t.Errorf("call %d: an end-to-end header was dropped: %v", i, resp.Header)
		}
	}
	checkNotHanded(t, gw)
}

// --- bodies -----------------------------------------------------------------

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestServeLargeBodies: bodies go to the container intact and come back
// intact, on one connection: a 1 MiB one each way, which Serve may leave to
// net/http, and one of 48 KiB, many times its buffers, which it relays
// itself.
func TestServeLargeBodies(t *testing.T) {
	big := make([]byte, 1<<20)
	rng := rand.NewChaCha8([32]byte{1})
	rng.Read(big)
	srv := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost:
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			io.WriteString(w, strconv.Itoa(len(b))+" "+sum(b))
		default:
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			w.Header().Set("Content-Length", strconv.Itoa(n))
			w.Write(big[:n])
		}
	})
	gw, addr := serveOne(t, srv.Listener.Addr().String())
	c := dialRaw(t, addr)
	upload := func(b []byte) {
		t.Helper()
		c.write(callHeadOf("POST", "/svc/up", "Content-Length: "+strconv.Itoa(len(b))))
		c.write(string(b))
		resp, body := c.read("POST")
		if want := strconv.Itoa(len(b)) + " " + sum(b); resp.StatusCode != http.StatusOK || string(body) != want {
			t.Errorf("upload of %d bytes: code %d, container received %q, want %q", len(b), resp.StatusCode, body, want)
		}
	}
	download := func(n int) {
		t.Helper()
		c.write(callHeadOf("GET", "/svc/down?n="+strconv.Itoa(n)))
		resp, body := c.read("GET")
		if resp.StatusCode != http.StatusOK || len(body) != n || sum(body) != sum(big[:n]) {
			t.Errorf("download of %d bytes: code %d, %d bytes, sha256 %s; want 200, %s",
				n, resp.StatusCode, len(body), sum(body), sum(big[:n]))
		}
		if resp.ContentLength != int64(n) {
			t.Errorf("download of %d bytes: Content-Length %d", n, resp.ContentLength)
		}
	}
	download(len(big))
	upload(big[:48<<10])
	download(48 << 10)
	checkNotHanded(t, gw)
	upload(big)
	download(len(big))
}

// TestServeStreamsChunks: an answer the container sends in chunks reaches
// the caller chunk by chunk: the caller reads the first before the
// container writes the second.
func TestServeStreamsChunks(t *testing.T) {
	next := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(next) }) }
	srv := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "first;")
		w.(http.Flusher).Flush()
		<-next
		io.WriteString(w, "second")
	})
	t.Cleanup(release) // before srv.Close, which waits for the handler
	gw, addr := serveOne(t, srv.Listener.Addr().String())
	c := dialRaw(t, addr)
	c.write(callHeadOf("GET", "/svc/stream"))

	c.nc.SetReadDeadline(time.Now().Add(time.Second))
	resp, err := http.ReadResponse(c.br, &http.Request{Method: http.MethodGet})
	if err != nil {
		t.Fatalf("no answer head while the container holds its second chunk: %v", err)
	}
	defer resp.Body.Close()
	if len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Errorf("Transfer-Encoding %q, want chunked", resp.TransferEncoding)
	}
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatalf("the first chunk did not come before the container wrote the second: %v", err)
	}
	if string(first) != "first;" {
		t.Errorf("first chunk %q", first)
	}
	release()
	c.nc.SetReadDeadline(time.Now().Add(rawTimeout))
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second" {
		t.Errorf("rest of the answer %q, %v; want %q", rest, err, "second")
	}
	checkNotHanded(t, gw)
}

// TestServeRelaysTrailers: the trailers of a chunked answer, announced or
// not, reach the caller.
func TestServeRelaysTrailers(t *testing.T) {
	srv := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	})
	gw, addr := serveOne(t, srv.Listener.Addr().String())
	c := dialRaw(t, addr)
	for i := range 2 {
		c.write(callHeadOf("GET", "/svc/trailers"))
		resp, body := c.read("GET")
		if resp.StatusCode != http.StatusOK || string(body) != "body" {
			t.Fatalf("call %d: code %d, body %q", i, resp.StatusCode, body)
		}
		if got := resp.Trailer.Get("X-Sum"); got != "abc" {
			t.Errorf("call %d: trailer X-Sum = %q, want abc (trailers %v)", i, got, resp.Trailer)
		}
		if got := resp.Trailer.Get("X-Late"); got != "late" {
			t.Errorf("call %d: trailer X-Late = %q, want late (trailers %v)", i, got, resp.Trailer)
		}
	}
	checkNotHanded(t, gw)
}

// TestServeAnswerToEOF: an answer with neither a length nor chunks, which
// ends when the container closes its connection, is relayed whole, and the
// caller's connection is closed after it.
func TestServeAnswerToEOF(t *testing.T) {
	srv := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		nc, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		io.WriteString(nc, "HTTP/1.1 200 OK\r\nX-Raw: 1\r\n\r\n")
		io.WriteString(nc, "body that ends with the connection")
	})
	gw, addr := serveOne(t, srv.Listener.Addr().String())
	c := dialRaw(t, addr)
	c.write(callHeadOf("GET", "/svc/eof"))
	resp, body := c.read("GET")
	if resp.StatusCode != http.StatusOK || string(body) != "body that ends with the connection" {
		t.Fatalf("code %d, body %q", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("the answer lacks Connection: close")
	}
	if resp.Header.Get("X-Raw") != "1" || resp.Header.Get(api.HeaderServedBy) != "svc@1.0.0 c1" {
		t.Errorf("answer headers %v", resp.Header)
	}
	c.expectClosed()
	checkNotHanded(t, gw)
}

// TestServeBodilessAnswers: the answers to HEAD, and 204 and 304 answers,
// carry no body whatever their headers say, and the connection carries the
// next call.
func TestServeBodilessAnswers(t *testing.T) {
	endpoint := rawBackend(t, func(r *http.Request) string {
		switch r.URL.Path {
		case "/svc/head":
			return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Type: text/plain\r\n\r\n"
		case "/svc/head-chunked":
			return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		case "/svc/204":
			return "HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n"
		case "/svc/304":
			return "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 10\r\n\r\n"
		default:
			return "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
		}
	})
	gw, addr := serveOne(t, endpoint)
	c := dialRaw(t, addr)
	for _, tt := range []struct {
		method, path string
		code         int
	}{
		{http.MethodHead, "/svc/head", http.StatusOK},
		{http.MethodGet, "/svc/next", http.StatusOK},
		{http.MethodHead, "/svc/head-chunked", http.StatusOK},
		{http.MethodGet, "/svc/next", http.StatusOK},
		{http.MethodGet, "/svc/204", http.StatusNoContent},
		{http.MethodGet, "/svc/next", http.StatusOK},
		{http.MethodGet, "/svc/304", http.StatusNotModified},
		{http.MethodGet, "/svc/next", http.StatusOK},
	} {
		c.write(callHeadOf(tt.method, tt.path))
		resp, body, err := c.tryRead(tt.method)
		if err != nil {
			t.Fatalf("%s %s: %v", tt.method, tt.path, err)
		}
		if resp.StatusCode != tt.code {
			t.Fatalf("%s %s: code %d, want %d", tt.method, tt.path, resp.StatusCode, tt.code)
		}
		if tt.path == "/svc/next" && string(body) != "next" {
			t.Fatalf("%s %s after a bodiless answer: body %q, want next", tt.method, tt.path, body)
		}
		if resp.Close {
			t.Errorf("%s %s: the answer closes the connection", tt.method, tt.path)
		}
	}
	checkNotHanded(t, gw)
}

// TestServeDropsInterimAnswers: 1xx answers the call did not ask for stay
// between the container and the gateway; the final answer is relayed.
// TestServeRelaysInterimAnswers: 1xx answers before the final one reach
// the caller, as ReverseProxy relays them, without hop-by-hop headers.
func TestServeRelaysInterimAnswers(t *testing.T) { eachMode(t, testServeRelaysInterimAnswers) }

func testServeRelaysInterimAnswers(t *testing.T, mode string) {
	endpoint := rawBackend(t, func(*http.Request) string {
		return "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nKeep-Alive: timeout=5\r\n\r\n" +
			"HTTP/1.1 102 Processing\r\n\r\n" +
			"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"
	})
	gw, addr := serveOneIn(t, mode, endpoint)
	c := dialRaw(t, addr)
	for i := range 2 {
		c.write(callHeadOf("GET", "/svc/x"))
		hints, _ := c.read("GET")
		// (ReverseProxy relays an interim answer's Keep-Alive; Serve drops
		// it, as a hop-by-hop header.)
		if hints.StatusCode != http.StatusEarlyHints || hints.Header.Get("Link") != "</style.css>; rel=preload" ||
			mode == modeServe && hints.Header.Get("Keep-Alive") != "" {
			t.Fatalf("call %d: first answer %d %v; want 103 with its Link and no Keep-Alive", i, hints.StatusCode, hints.Header)
		}
		if processing, _ := c.read("GET"); processing.StatusCode != http.StatusProcessing {
			t.Fatalf("call %d: second answer %d, want 102", i, processing.StatusCode)
		}
		if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK || string(body) != "final" {
			t.Fatalf("call %d: code %d, body %q; want 200, final", i, resp.StatusCode, body)
		}
	}
	checkNotHanded(t, gw)
}

// TestServeEarlyAnswer: a container that answers before it reads a long
// body (a 413, a 401 to an upload) has its answer relayed, as ServeHTTP's
// transport relays it, not replaced by a 502.
func TestServeEarlyAnswer(t *testing.T) { eachMode(t, testServeEarlyAnswer) }

func testServeEarlyAnswer(t *testing.T, mode string) {
	// The container answers once it has the head, and reads no more of the
	// body, as net/http does with a long body its handler leaves.
	bln := listen(t)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := bln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				if _, err := http.ReadRequest(bufio.NewReader(nc)); err != nil {
					return
				}
				io.WriteString(nc, "HTTP/1.1 413 Request Entity Too Large\r\nConnection: close\r\n"+
					"Content-Type: text/plain\r\nContent-Length: 10\r\n\r\ntoo large\n")
				<-done
			}()
		}
	}()
	t.Cleanup(func() {
		bln.Close()
		close(done)
		wg.Wait()
	})
	_, addr := serveOneIn(t, mode, bln.Addr().String())
	for _, size := range []int{32 << 10, 8 << 20} {
		c := dialRaw(t, addr)
		c.write(callHeadOf("POST", "/svc/upload", "Content-Length: "+strconv.Itoa(size)))
		go func() {
			// Until the gateway stops reading: the write's error is expected.
			_, _ = c.nc.Write(make([]byte, size))
		}()
		resp, body, err := c.tryRead("POST")
		if err != nil {
			t.Fatalf("body of %d bytes: no answer: %v", size, err)
		}
		if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(body), "too large") {
			t.Errorf("body of %d bytes: code %d, body %q; want the container's 413", size, resp.StatusCode, body)
		}
	}
}

// TestServeMethodOutlivesBody: whether the answer has a body depends on the
// call's method as the caller sent it, even when the call's body, read after
// its head, takes the place of the head in the connection's buffer.
func TestServeMethodOutlivesBody(t *testing.T) {
	gotHead := make(chan struct{}, 1)
	srv := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		gotHead <- struct{}{}
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "received "+string(b))
	})
	gw, addr := serveOne(t, srv.Listener.Addr().String())
	c := dialRaw(t, addr)
	c.write(callHeadOf("POST", "/svc/x", "Content-Length: 8"))
	select {
	case <-gotHead:
	case <-time.After(rawTimeout):
		t.Fatal("the call's head never reached the container")
	}
	// The body comes after the head was read, and starts like a method.
	c.write("HEADBODY")
	resp, body, err := c.tryRead("POST")
	if err != nil {
		t.Fatalf("POST whose body starts with HEAD: %v", err)
	}
	if resp.StatusCode != http.StatusOK || string(body) != "received HEADBODY" {
		t.Fatalf("code %d, body %q; want 200, %q", resp.StatusCode, body, "received HEADBODY")
	}
	// The connection, and the container's, still carry calls.
	c.write(callHeadOf("GET", "/svc/y"))
	if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK || string(body) != "received " {
		t.Errorf("next call: code %d, body %q", resp.StatusCode, body)
	}
	checkNotHanded(t, gw)
}

// --- handover ---------------------------------------------------------------

// TestServeHandsOver: each call Serve does not take itself is answered by
// ServeHTTP on the same connection.
func TestServeHandsOver(t *testing.T) {
	cl := newCluster(t, modeServe)
	addr := addrOf(cl.url1)
	v := api.HeaderClientVersion + ": 1.0.0\r\n"
	tests := []struct {
		name string
		run  func(t *testing.T, c *rawConn)
	}{
		{"chunked body", func(t *testing.T, c *rawConn) {
			c.write("POST /greeter/chunked HTTP/1.1\r\nHost: gateway\r\n" + v +
				"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
			resp, body := c.read("POST")
			e := decodeEcho(t, body)
			if resp.StatusCode != http.StatusOK || e.Body != "hello world" || e.Container != "g1" {
				t.Errorf("code %d, %s received %q, want g1 and %q", resp.StatusCode, e.Container, e.Body, "hello world")
			}
		}},
		{"expect 100-continue", func(t *testing.T, c *rawConn) {
			c.write("POST /greeter/expect HTTP/1.1\r\nHost: gateway\r\n" + v +
				"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
			resp, _ := c.read("POST")
			if resp.StatusCode != http.StatusContinue {
				t.Fatalf("code %d before the body, want 100", resp.StatusCode)
			}
			c.write("hello")
			var body []byte
			for resp.StatusCode == http.StatusContinue {
				resp, body = c.read("POST")
			}
			e := decodeEcho(t, body)
			if resp.StatusCode != http.StatusOK || e.Body != "hello" || e.Container != "g1" {
				t.Errorf("code %d, %s received %q, want g1 and %q", resp.StatusCode, e.Container, e.Body, "hello")
			}
		}},
		{"escaped path", func(t *testing.T, c *rawConn) {
			c.write(callHeadOf("GET", "/greeter/a%20b"))
			resp, body := c.read("GET")
			e := decodeEcho(t, body)
			if resp.StatusCode != http.StatusOK || e.Path != "/greeter/a b" || e.Container != "g1" {
				t.Errorf("code %d, %s received path %q, want g1 and %q", resp.StatusCode, e.Container, e.Path, "/greeter/a b")
			}
		}},
		{"head over 4 KiB", func(t *testing.T, c *rawConn) {
			c.write(callHeadOf("GET", "/greeter/long", "X-Long: "+strings.Repeat("a", 5000)))
			resp, body := c.read("GET")
			if e := decodeEcho(t, body); resp.StatusCode != http.StatusOK || e.Path != "/greeter/long" {
				t.Errorf("code %d, container received %q", resp.StatusCode, e.Path)
			}
		}},
		{"HTTP/1.0", func(t *testing.T, c *rawConn) {
			c.write("GET /greeter/old HTTP/1.0\r\nHost: gateway\r\n" + v + "\r\n")
			resp, body := c.read("GET")
			if e := decodeEcho(t, body); resp.StatusCode != http.StatusOK || e.Path != "/greeter/old" {
				t.Errorf("code %d, container received %q", resp.StatusCode, e.Path)
			}
			// A 1.0 call without keep-alive ends its connection.
			if !resp.Close {
				t.Errorf("answer %s does not close the connection", resp.Proto)
			}
			c.expectClosed()
		}},
		{"metrics", func(t *testing.T, c *rawConn) {
			c.write("GET /v1/metrics HTTP/1.1\r\nHost: gateway\r\n\r\n")
			resp, body := c.read("GET")
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
				t.Errorf("code %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if !strings.Contains(string(body), "coexist_gateway_requests_total{") {
				t.Errorf("metrics lack coexist_gateway_requests_total:\n%s", body)
			}
		}},
		{"two Content-Lengths", func(t *testing.T, c *rawConn) {
			c.write("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("code %d, body %q; want net/http's 400", resp.StatusCode, body)
			}
		}},
		{"no Host", func(t *testing.T, c *rawConn) {
			c.write("GET /greeter/x HTTP/1.1\r\n" + v + "\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("code %d, body %q; want net/http's 400", resp.StatusCode, body)
			}
		}},
		{"two Hosts", func(t *testing.T, c *rawConn) {
			c.write("GET /greeter/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n" + v + "\r\n")
			if resp, body := c.read("GET"); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("code %d, body %q; want net/http's 400", resp.StatusCode, body)
			}
		}},
	}
	// A call counted first, so that the metrics hold a request count.
	if a := do(t, http.MethodGet, cl.url1+"/greeter/x", clientV("1.0.0"), ""); a.code != http.StatusOK {
		t.Fatalf("code %d", a.code)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := handedOver(cl.n1)
			tt.run(t, dialRaw(t, addr))
			if after := handedOver(cl.n1); after != before+1 {
				t.Errorf("connections handed over: %v, then %v; want one more", before, after)
			}
		})
	}
}

// TestServeHandsOverMidConnection: a connection whose first call Serve
// answers and whose second, written with it, it does not take is handed
// over with that second call whole; its later calls are answered too.
func TestServeHandsOverMidConnection(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	c.write(callHeadOf("GET", "/greeter/fast") +
		callHeadOf("POST", "/greeter/chunked", "Transfer-Encoding: chunked") + "4\r\nbody\r\n0\r\n\r\n")
	for _, want := range []struct{ path, body string }{{"/greeter/fast", ""}, {"/greeter/chunked", "body"}} {
		resp, body := c.read("GET")
		if e := decodeEcho(t, body); resp.StatusCode != http.StatusOK || e.Path != want.path || e.Body != want.body {
			t.Fatalf("code %d, container received %s with %q; want %s with %q", resp.StatusCode, e.Path, e.Body, want.path, want.body)
		}
	}
	if n := handedOver(cl.n1); n != 1 {
		t.Errorf("%v connections handed over, want 1", n)
	}
	c.write(callHeadOf("GET", "/greeter/after"))
	if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK || decodeEcho(t, body).Path != "/greeter/after" {
		t.Errorf("call after the handover: code %d, body %s", resp.StatusCode, body)
	}
}

// TestServePipelinedDuringWatch: a call written while the one before it
// waits for its answer, when the gateway watches the caller's connection,
// is read whole, its first byte included.
func TestServePipelinedDuringWatch(t *testing.T) {
	arrived := make(chan string, 2)
	release := make(chan struct{})
	var once sync.Once
	srv := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- r.URL.Path
		if r.URL.Path == "/svc/first" {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	})
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	gw, addr := serveOne(t, srv.Listener.Addr().String())
	c := dialRaw(t, addr)
	c.write(callHeadOf("GET", "/svc/first"))
	if got := <-arrived; got != "/svc/first" {
		t.Fatalf("container received %s", got)
	}
	time.Sleep(3 * gwWatchAfter) // the watch reads the caller's connection
	c.write(callHeadOf("GET", "/svc/second"))
	once.Do(func() { close(release) })
	for _, want := range []string{"/svc/first", "/svc/second"} {
		if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("code %d, body %q; want the answer to %s", resp.StatusCode, body, want)
		}
	}
	checkNotHanded(t, gw)
}

// --- refusals ---------------------------------------------------------------

// TestServeRefusalKeepsConnection: a call Serve refuses is answered with a
// JSON error, and the connection carries the next call.
func TestServeRefusalKeepsConnection(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	c.write("GET /greeter/x HTTP/1.1\r\nHost: gateway\r\nCoexist-Client: web\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("code %d, body %s; want 400", resp.StatusCode, body)
	}
	var e api.ErrorResponse
	if err := json.Unmarshal(body, &e); err != nil || !strings.Contains(e.Error, api.HeaderClientVersion) {
		t.Errorf("error %q (%v) does not name %s", body, err, api.HeaderClientVersion)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if resp.Close {
		t.Errorf("the refusal closes the connection")
	}
	c.write(callHeadOf("GET", "/greeter/y"))
	resp, body = c.read("GET")
	if e := decodeEcho(t, body); resp.StatusCode != http.StatusOK || e.Path != "/greeter/y" {
		t.Errorf("next call: code %d, container received %q", resp.StatusCode, e.Path)
	}
	checkNotHanded(t, cl.n1)
}

// TestServeRefusalDiscardsBody: the body of a refused call is read and
// dropped, so that the call after it on the connection is read from its
// first byte, even when the body looks like a call.
func TestServeRefusalDiscardsBody(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	smuggled := callHeadOf("GET", "/greeter/smuggled")
	c.write("POST /nosuch/x HTTP/1.1\r\nHost: gateway\r\n" + api.HeaderClientVersion + ": 1.0.0\r\n" +
		"Content-Length: " + strconv.Itoa(len(smuggled)) + "\r\n\r\n" + smuggled +
		callHeadOf("GET", "/greeter/next"))
	resp, body := c.read("POST")
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("code %d, body %s; want 404", resp.StatusCode, body)
	}
	resp, body = c.read("GET")
	if e := decodeEcho(t, body); resp.StatusCode != http.StatusOK || e.Path != "/greeter/next" {
		t.Errorf("next call: code %d, container received %q, want /greeter/next", resp.StatusCode, e.Path)
	}
	checkNotHanded(t, cl.n1)
}

// TestServeRefusedHead: the refusal of a HEAD call has no body, so that
// the connection carries the next call.
func TestServeRefusedHead(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	for _, h := range []string{
		"HEAD /greeter/x HTTP/1.1\r\nHost: gateway\r\n\r\n", // no client version: 400
		callHeadOf("HEAD", "/dead/x"),                       // unreachable: 503
	} {
		c.write(h)
		resp, _ := c.read("HEAD")
		if resp.StatusCode < 400 {
			t.Fatalf("code %d, want a refusal", resp.StatusCode)
		}
		c.write(callHeadOf("GET", "/greeter/next"))
		resp, body, err := c.tryRead("GET")
		if err != nil {
			t.Fatalf("the call after a refused HEAD: %v", err)
		}
		if e := decodeEcho(t, body); resp.StatusCode != http.StatusOK || e.Path != "/greeter/next" {
			t.Fatalf("the call after a refused HEAD: code %d, body %s", resp.StatusCode, body)
		}
	}
}

// TestServeRefusalClose: a refused call that asks for Connection: close is
// answered, then its connection closed.
func TestServeRefusalClose(t *testing.T) {
	cl := newCluster(t, modeServe)
	c := dialRaw(t, addrOf(cl.url1))
	c.write(callHeadOf("POST", "/nosuch/x", "Connection: close", "Content-Length: 4") + "body")
	resp, body := c.read("POST")
	if resp.StatusCode != http.StatusNotFound || !resp.Close {
		t.Errorf("code %d, close %v, body %s; want 404 and Connection: close", resp.StatusCode, resp.Close, body)
	}
	c.expectClosed()
	checkNotHanded(t, cl.n1)
}

// --- upstream connections ---------------------------------------------------

// TestServeUpstreamClosedIdle: a container that closes its idle kept
// connections still gets the next calls: a GET is sent again on a new
// connection, and a connection idle a while is checked before it carries a
// POST.
func TestServeUpstreamClosedIdle(t *testing.T) {
	srv := backend(t, "c1")
	gw, addr := serveOne(t, srv.Listener.Addr().String())
	c := dialRaw(t, addr)
	call := func(method, path, body string) {
		t.Helper()
		h := callHeadOf(method, path)
		if body != "" {
			h = callHeadOf(method, path, "Content-Length: "+strconv.Itoa(len(body))) + body
		}
		c.write(h)
		resp, b := c.read(method)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: code %d, body %s", method, path, resp.StatusCode, b)
		}
		if e := decodeEcho(t, b); e.Path != path || e.Body != body {
			t.Fatalf("%s %s: container received %s with %q", method, path, e.Path, e.Body)
		}
	}
	call("GET", "/svc/1", "")
	srv.CloseClientConnections()
	call("GET", "/svc/2", "") // at once: sent again
	srv.CloseClientConnections()
	// A connection is checked before every use.
	call("POST", "/svc/3", "payload")
	call("POST", "/svc/4", "payload") // on the connection of /svc/3
	checkNotHanded(t, gw)
}

// TestServeUpstreamIdleTimeout: a container whose server closes idle
// connections after a short while gets every call, from the same caller's
// connection and from a new one, which takes a pooled connection.
func TestServeUpstreamIdleTimeout(t *testing.T) {
	var opened, closed atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, r.Method+" "+string(b))
	}))
	srv.Config.IdleTimeout = 20 * time.Millisecond
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			opened.Add(1)
		case http.StateClosed:
			closed.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	gw, addr := serveOne(t, srv.Listener.Addr().String())

	call := func(c *rawConn, method, body string) {
		t.Helper()
		c.write(callHeadOf(method, "/svc/x", "Content-Length: "+strconv.Itoa(len(body))) + body)
		if resp, b := c.read(method); resp.StatusCode != http.StatusOK || string(b) != method+" "+body {
			t.Fatalf("%s: code %d, body %q", method, resp.StatusCode, b)
		}
	}
	allClosed := func() bool { return closed.Load() == opened.Load() }
	c := dialRaw(t, addr)
	call(c, "GET", "")
	waitFor(t, "the container to close its idle connections", allClosed)
	call(c, "POST", "one")
	call(c, "GET", "")
	c.nc.Close() // its upstream connection goes to the pool
	waitFor(t, "the container to close its idle connections", allClosed)
	c2 := dialRaw(t, addr)
	call(c2, "POST", "two")
	checkNotHanded(t, gw)
}

// TestServeUpstreamReplaced: a container stops, and another starts on its
// address: a POST goes to the new one, not to the kept connection to the
// old one.
func TestServeUpstreamReplaced(t *testing.T) {
	old := backend(t, "old")
	endpoint := old.Listener.Addr().String()
	gw, addr := serveOne(t, endpoint)
	c := dialRaw(t, addr)
	c.write(callHeadOf("GET", "/svc/x"))
	if resp, body := c.read("GET"); resp.StatusCode != http.StatusOK || decodeEcho(t, body).Container != "old" {
		t.Fatalf("code %d, body %s", resp.StatusCode, body)
	}
	old.Close()

	ln, err := net.Listen("tcp", endpoint)
	if err != nil {
		t.Fatalf("listen on the old container's address: %v", err)
	}
	repl := httptest.NewUnstartedServer(old.Config.Handler)
	repl.Listener.Close()
	repl.Listener = ln
	repl.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		json.NewEncoder(w).Encode(echo{Container: "new", Path: r.URL.Path, Body: string(b)})
	})
	repl.Start()
	t.Cleanup(repl.Close)

	c.write(callHeadOf("POST", "/svc/y", "Content-Length: 4") + "data")
	resp, body := c.read("POST")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("code %d, body %s", resp.StatusCode, body)
	}
	if e := decodeEcho(t, body); e.Container != "new" || e.Body != "data" {
		t.Errorf("served by %q with %q, want new with data", e.Container, e.Body)
	}
	checkNotHanded(t, gw)
}

// --- shutdown ---------------------------------------------------------------

// TestServeShutdown: Shutdown closes the listener and the idle connections
// at once, lets a call in progress finish with its answer, then closes its
// connection, and returns only then, with the connections handed to net/http
// closed too.
func TestServeShutdown(t *testing.T) {
	cl := newCluster(t, modeServe)
	gw, err := NewGateway(GatewayConfig{NodeID: "n1", Table: cl.table.Load, Authorize: admitAll})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	addr := ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- gw.Serve(ln) }()
	t.Cleanup(func() { gw.Close() })

	idle := dialRaw(t, addr)
	idle.write(callHeadOf("GET", "/greeter/x"))
	if resp, body := idle.read("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("code %d, body %s", resp.StatusCode, body)
	}
	handed := dialRaw(t, addr) // a connection net/http answers, idle
	handed.write("GET /v1/metrics HTTP/1.1\r\nHost: gateway\r\n\r\n")
	if resp, body := handed.read("GET"); resp.StatusCode != http.StatusOK {
		t.Fatalf("code %d, body %s", resp.StatusCode, body)
	}
	slow := dialRaw(t, addr)
	slow.write(callHeadOf("GET", "/slow/x"))
	waitFor(t, "the slow call at its container", func() bool { return cl.slowCalls.Load() == 1 })

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), rawTimeout)
		defer cancel()
		shut <- gw.Shutdown(ctx)
	}()
	select {
	case err := <-served:
		if !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	case <-time.After(rawTimeout):
		t.Fatal("Serve did not return")
	}
	idle.expectClosed()
	if nc, err := net.Dial("tcp", addr); err == nil {
		nc.Close()
		t.Errorf("a connection was accepted after Shutdown")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a call in progress", err)
	case <-time.After(30 * time.Millisecond):
	}

	cl.releaseSlow()
	resp, body := slow.read("GET")
	if resp.StatusCode != http.StatusOK || string(body) != "slow done" {
		t.Errorf("slow call: code %d, body %q", resp.StatusCode, body)
	}
	if !resp.Close {
		t.Errorf("the last answer before Shutdown lacks Connection: close")
	}
	slow.expectClosed()
	select {
	case err := <-shut:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(rawTimeout):
		t.Fatal("Shutdown did not return after the last call")
	}
	handed.expectClosed()
	if n := gw.inflight.Total("s1"); n != 0 {
		t.Errorf("in flight after Shutdown: %d", n)
	}
	if err := gw.Serve(listen(t)); !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve after Shutdown returned %v, want http.ErrServerClosed", err)
	}
}

// blockingBackend is a container whose calls wait until their caller goes
// away (or 5 s pass); got receives each call as it arrives, and canceled
// tells whether a call ended by its caller going away.
func blockingBackend(t *testing.T) (addr string, got chan struct{}, canceled *atomic.Bool) {
	t.Helper()
	got, canceled = make(chan struct{}, 4), &atomic.Bool{}
	srv := handlerBackend(t, func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		select {
		case <-r.Context().Done():
			canceled.Store(true)
		case <-time.After(5 * time.Second):
		}
	})
	return srv.Listener.Addr().String(), got, canceled
}

// TestServeCloseEndsCall: Close ends a call in progress at once, even one
// the watchdog has not watched yet: its container sees the call's
// connection close.
func TestServeCloseEndsCall(t *testing.T) {
	addr, got, canceled := blockingBackend(t)
	gw, gwAddr := serveOne(t, addr)
	c := dialRaw(t, gwAddr)
	c.write(callHeadOf("GET", "/svc/x"))
	<-got
	gw.Close()
	waitFor(t, "the container's call ended by Close", canceled.Load)
}

// TestServeShutdownCallerGone: during a graceful Shutdown, a caller who
// goes away still ends its call, and Shutdown does not wait for it.
func TestServeShutdownCallerGone(t *testing.T) {
	addr, got, canceled := blockingBackend(t)
	gw, gwAddr := serveOne(t, addr)
	c := dialRaw(t, gwAddr)
	c.write(callHeadOf("GET", "/svc/x"))
	<-got
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		defer cancel()
		done <- gw.Shutdown(ctx)
	}()
	c.nc.Close() // the caller goes away during the drain
	waitFor(t, "the call ended by its caller going away", canceled.Load)
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// prefixConn is a connection a listener wraps, as a PROXY-protocol or
// sniffing listener does: it embeds *net.TCPConn and reads some bytes of
// its own first.
type prefixConn struct {
	*net.TCPConn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

type prefixListener struct {
	net.Listener
	prefix string
}

func (l prefixListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := nc.(*net.TCPConn)
	return &prefixConn{TCPConn: tc, r: io.MultiReader(strings.NewReader(l.prefix), tc)}, nil
}

// TestServeWrappedConn: Serve reads a wrapped connection through its Read,
// not through the socket under it.
func TestServeWrappedConn(t *testing.T) {
	srv := backend(t, "c1")
	gw, _ := serveOne(t, srv.Listener.Addr().String())
	ln := listen(t)
	go gw.Serve(prefixListener{Listener: ln, prefix: callHeadOf("GET", "/svc/from-wrapper")})
	c := dialRaw(t, ln.Addr().String())
	resp, body := c.read("GET")
	if resp.StatusCode != http.StatusOK || decodeEcho(t, body).Path != "/svc/from-wrapper" {
		t.Errorf("the call the wrapper's Read returns: %d %s", resp.StatusCode, body)
	}
}
