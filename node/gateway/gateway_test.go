package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/inflight"
	"github.com/coexist-dev/coexist/routing"
	dto "github.com/prometheus/client_model/go"
)

// --- fixtures ---------------------------------------------------------------

// echo is what a test backend answers: what it received.
type echo struct {
	Container string `json:"container"`
	Method    string `json:"method"`
	Path      string `json:"path"`
	Query     string `json:"query"`
	Host      string `json:"host"`
	Body      string `json:"body"`
	Hops      string `json:"hops"`
	XFF       string `json:"xff"`
}

// backend starts a container stand-in that echoes each call.
func backend(t testing.TB, id string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		// A container cannot claim to be another.
		w.Header().Set(api.HeaderServedBy, "spoofed")
		_ = json.NewEncoder(w).Encode(echo{
			Container: id, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host,
			Body: string(body), Hops: r.Header.Get(api.HeaderHops), XFF: r.Header.Get("X-Forwarded-For"),
		})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// deadAddr returns a loopback address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func sver(service, ver, clients, state string) api.ServiceVersion {
	return api.ServiceVersion{Service: service, Version: ver, Clients: clients, State: state}
}

// ctrAt is a running container on node at endpoint holding refs
// ("greeter@1.0.0"), each serving.
func ctrAt(id, node, endpoint string, refs ...string) api.Container {
	c := api.Container{ID: id, Node: node, Desired: api.DesiredPresent,
		Status: &api.ContainerStatus{State: api.ContainerRunning, Endpoint: endpoint}}
	for _, ref := range refs {
		s, v, _ := strings.Cut(ref, "@")
		c.Services = append(c.Services, api.ServiceRef{Service: s, Version: v})
		c.Status.Services = append(c.Status.Services, api.ServiceStatus{Service: s, Version: v, State: api.ServiceServing})
	}
	return c
}

// cluster is two nodes, n1 and n2, each with its gateway behind httptest,
// sharing one table:
//
//	greeter 1.0.0 (clients 1.x) on g1, 2.0.0 (clients 2.x) on g2: both on n1
//	orders  1.0.0 (clients 1.x-2.x) on o2, on n2 only
//	pay     1.0.0 draining (clients 1.x-2.x) on p1, 2.0.0 active (clients 2.x) on p2: both on n1
//	dead    1.0.0 on d1, on n1, whose endpoint refuses connections
//	slow    1.0.0 on s1, on n1, which answers when told to
//	broken  1.0.0 on b1, on n1, which hangs up without answering
type cluster struct {
	n1, n2     *Gateway
	url1, url2 string
	inflight1  *inflight.Counts
	table      atomic.Pointer[routing.Table]
	release    chan struct{}   // closed by releaseSlow
	releaseOne sync.Once       //
	slowCalls  atomic.Int32    // slow calls the backend received
	services   []api.Service   // what table holds
	containers []api.Container //
	nodes      []api.Node      //
}

func newCluster(t testing.TB, mode string) *cluster {
	t.Helper()
	cl := &cluster{release: make(chan struct{})}
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cl.slowCalls.Add(1)
		<-cl.release
		io.WriteString(w, "slow done")
	}))
	t.Cleanup(slow.Close)
	// After Close in the code, so before it when cleaning up: Close waits
	// for the calls the backend still holds.
	t.Cleanup(cl.releaseSlow)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(broken.Close)

	addr := func(s *httptest.Server) string { return s.Listener.Addr().String() }
	ln1, ln2 := listen(t), listen(t)
	cl.services = []api.Service{
		{Name: "greeter", Versions: []api.ServiceVersion{
			sver("greeter", "1.0.0", ">= 1.0, < 2.0", api.VersionActive),
			sver("greeter", "2.0.0", ">= 2.0, < 3.0", api.VersionActive),
		}},
		{Name: "orders", Versions: []api.ServiceVersion{sver("orders", "1.0.0", ">= 1.0, < 3.0", api.VersionActive)}},
		{Name: "pay", Versions: []api.ServiceVersion{
			sver("pay", "1.0.0", ">= 1.0, < 3.0", api.VersionDraining),
			sver("pay", "2.0.0", ">= 2.0, < 3.0", api.VersionActive),
		}},
		{Name: "dead", Versions: []api.ServiceVersion{sver("dead", "1.0.0", ">= 0.0.1", api.VersionActive)}},
		{Name: "slow", Versions: []api.ServiceVersion{sver("slow", "1.0.0", ">= 0.0.1", api.VersionActive)}},
		{Name: "broken", Versions: []api.ServiceVersion{sver("broken", "1.0.0", ">= 0.0.1", api.VersionActive)}},
	}
	cl.containers = []api.Container{
		ctrAt("g1", "n1", addr(backend(t, "g1")), "greeter@1.0.0"),
		ctrAt("g2", "n1", addr(backend(t, "g2")), "greeter@2.0.0"),
		ctrAt("o2", "n2", addr(backend(t, "o2")), "orders@1.0.0"),
		ctrAt("p1", "n1", addr(backend(t, "p1")), "pay@1.0.0"),
		ctrAt("p2", "n1", addr(backend(t, "p2")), "pay@2.0.0"),
		ctrAt("d1", "n1", deadAddr(t), "dead@1.0.0"),
		ctrAt("s1", "n1", addr(slow), "slow@1.0.0"),
		ctrAt("b1", "n1", addr(broken), "broken@1.0.0"),
	}
	cl.nodes = []api.Node{
		{ID: "n1", Gateway: ln1.Addr().String(), Status: api.NodeReady},
		{ID: "n2", Gateway: ln2.Addr().String(), Status: api.NodeReady},
	}
	cl.table.Store(routing.NewTable(cl.services, cl.containers, cl.nodes))

	cl.inflight1 = inflight.New()
	var err error
	if cl.n1, err = NewGateway(GatewayConfig{NodeID: "n1", Table: cl.table.Load, Inflight: cl.inflight1, Authorize: admitAll, Engine: engineOf(mode)}); err != nil {
		t.Fatal(err)
	}
	if cl.n2, err = NewGateway(GatewayConfig{NodeID: "n2", Table: cl.table.Load, Authorize: admitAll, Engine: engineOf(mode)}); err != nil {
		t.Fatal(err)
	}
	serveGateway(t, mode, cl.n1, ln1)
	serveGateway(t, mode, cl.n2, ln2)
	cl.url1, cl.url2 = "http://"+ln1.Addr().String(), "http://"+ln2.Addr().String()
	return cl
}

// The two ways a gateway answers calls: Serve, its own HTTP/1.1 (which
// hands what it does not take to ServeHTTP), and ServeHTTP alone, in an
// http.Server.
const (
	modeServe   = "serve"
	modeHandler = "handler"
	// modeStd is Serve with EngineStd: every connection to net/http.
	modeStd = "std"
)

// engineOf is the engine of a gateway that answers in mode.
func engineOf(mode string) Engine {
	if mode == modeStd {
		return EngineStd
	}
	return EngineFast
}

// eachMode runs a test against gateways answering each way: the parity of
// the fast engine with net/http and ReverseProxy (DESIGN.md).
func eachMode(t *testing.T, test func(t *testing.T, mode string)) {
	for _, m := range []string{modeServe, modeHandler, modeStd} {
		t.Run(m, func(t *testing.T) { test(t, m) })
	}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveGateway answers calls on ln with gw, in mode, until the test ends.
func serveGateway(t testing.TB, mode string, gw *Gateway, ln net.Listener) {
	t.Helper()
	done := make(chan error, 1)
	switch mode {
	case modeServe, modeStd:
		// Before Serve: the engine is read only by Serve.
		gw.cfg.Engine = engineOf(mode)
		go func() { done <- gw.Serve(ln) }()
		t.Cleanup(func() {
			gw.Close()
			if err := <-done; !errors.Is(err, http.ErrServerClosed) {
				t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
			}
		})
	case modeHandler:
		srv := &http.Server{Handler: gw}
		go func() { done <- srv.Serve(ln) }()
		t.Cleanup(func() {
			srv.Close()
			<-done
		})
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// releaseSlow lets the slow calls answer.
func (cl *cluster) releaseSlow() { cl.releaseOne.Do(func() { close(cl.release) }) }

// answer is what a test reads of a gateway's answer.
type answer struct {
	code     int
	header   http.Header
	body     []byte
	echo     echo   // when a backend answered
	errorMsg string // when the gateway refused
}

// do makes one call; header holds extra headers, and "Host" sets the Host.
func do(t testing.TB, method, url string, header map[string]string, body string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{code: resp.StatusCode, header: resp.Header}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var e api.ErrorResponse
		if json.Unmarshal(a.body, &e) == nil {
			a.errorMsg = e.Error
		}
		_ = json.Unmarshal(a.body, &a.echo)
	}
	return a
}

func clientV(v string) map[string]string {
	return map[string]string{api.HeaderClient: "web", api.HeaderClientVersion: v}
}

func with(h map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range h {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// admitAll is a GatewayConfig.Authorize that admits every caller.
func admitAll(context.Context, string) error { return nil }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// --- routing ----------------------------------------------------------------

func TestGatewayRoutes(t *testing.T) { eachMode(t, testGatewayRoutes) }

func testGatewayRoutes(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	tests := []struct {
		name     string
		gateway  string // "n1" (default) or "n2"
		method   string
		path     string
		header   map[string]string
		body     string
		servedBy string // Coexist-Served-By
		path2    string // the path the container received
		hops     string // the Coexist-Hops the container received
	}{
		{name: "1.x client by path gets 1.0.0", path: "/greeter/hello", header: clientV("1.4.0"),
			servedBy: "greeter@1.0.0 g1", path2: "/greeter/hello"},
		{name: "2.x client by path gets 2.0.0", path: "/greeter/hello", header: clientV("2.1.0"),
			servedBy: "greeter@2.0.0 g2", path2: "/greeter/hello"},
		{name: "by Host, path prefixed", path: "/hello/x", header: with(clientV("1.0.0"), "Host", "greeter"),
			servedBy: "greeter@1.0.0 g1", path2: "/greeter/hello/x"},
		{name: "by Host with port, root path", path: "/", header: with(clientV("2.0.0"), "Host", "greeter:7780"),
			servedBy: "greeter@2.0.0 g2", path2: "/greeter/"},
		{name: "path wins over Host", path: "/greeter/a", header: with(clientV("2.0.0"), "Host", "pay"),
			servedBy: "greeter@2.0.0 g2", path2: "/greeter/a"},
		{name: "no client name is anonymous", path: "/greeter", header: map[string]string{api.HeaderClientVersion: "1.0.0"},
			servedBy: "greeter@1.0.0 g1", path2: "/greeter"},
		{name: "method, query and body preserved", method: http.MethodPost, path: "/greeter/orders?id=7&x=a%20b",
			header: clientV("1.0.0"), body: `{"n":1}`, servedBy: "greeter@1.0.0 g1", path2: "/greeter/orders"},
		{name: "named container still right", path: "/greeter/x", header: with(clientV("1.0.0"), api.HeaderContainer, "g1"),
			servedBy: "greeter@1.0.0 g1", path2: "/greeter/x"},
		{name: "draining version chosen when the only candidate", path: "/pay/x", header: clientV("1.5.0"),
			servedBy: "pay@1.0.0 p1", path2: "/pay/x"},
		{name: "draining version served when named and the only candidate", path: "/pay/x",
			header: with(clientV("1.5.0"), api.HeaderContainer, "p1"), servedBy: "pay@1.0.0 p1", path2: "/pay/x"},
		{name: "active alternative chosen over draining", path: "/pay/x", header: clientV("2.0.0"),
			servedBy: "pay@2.0.0 p2", path2: "/pay/x"},
		{name: "forwarded to the remote gateway", path: "/orders/1", header: clientV("1.0.0"),
			servedBy: "orders@1.0.0 o2", path2: "/orders/1", hops: "1"},
		{name: "forwarded by Host, prefixed once", path: "/1", header: with(clientV("2.0.0"), "Host", "orders"),
			servedBy: "orders@1.0.0 o2", path2: "/orders/1", hops: "1"},
		{name: "remote gateway serves its own container", gateway: "n2", path: "/orders/1", header: clientV("1.0.0"),
			servedBy: "orders@1.0.0 o2", path2: "/orders/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := cl.url1
			if tt.gateway == "n2" {
				base = cl.url2
			}
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			a := do(t, method, base+tt.path, tt.header, tt.body)
			if a.code != http.StatusOK {
				t.Fatalf("code = %d, want 200; body %s", a.code, a.body)
			}
			if got := a.header.Values(api.HeaderServedBy); len(got) != 1 || got[0] != tt.servedBy {
				t.Errorf("%s = %q, want [%q]", api.HeaderServedBy, got, tt.servedBy)
			}
			if want := strings.Fields(tt.servedBy)[1]; a.echo.Container != want {
				t.Errorf("served by backend %q, want %q", a.echo.Container, want)
			}
			if a.echo.Path != tt.path2 {
				t.Errorf("container received path %q, want %q", a.echo.Path, tt.path2)
			}
			if a.echo.Hops != tt.hops {
				t.Errorf("container received %s %q, want %q", api.HeaderHops, a.echo.Hops, tt.hops)
			}
			if a.echo.Method != method || a.echo.Body != tt.body {
				t.Errorf("container received %s with body %q, want %s with %q", a.echo.Method, a.echo.Body, method, tt.body)
			}
			if _, q, ok := strings.Cut(tt.path, "?"); ok && a.echo.Query != q {
				t.Errorf("container received query %q, want %q", a.echo.Query, q)
			}
			if host := tt.header["Host"]; host != "" && a.echo.Host != host {
				t.Errorf("container received Host %q, want the caller's %q", a.echo.Host, host)
			}
			if !strings.HasPrefix(a.echo.XFF, "127.0.0.1") {
				t.Errorf("container received X-Forwarded-For %q, want the caller's address", a.echo.XFF)
			}
			if a.header.Get(api.HeaderRetry) != "" {
				t.Errorf("a served call carries %s", api.HeaderRetry)
			}
		})
	}
	switch mode {
	case modeServe:
		// Every one of these calls is one Serve answers itself.
		if n := handedOver(cl.n1) + handedOver(cl.n2); n != 0 {
			t.Errorf("%v connections handed to net/http, want 0", n)
		}
	case modeStd:
		// net/http answers every one.
		if n := handedOver(cl.n1) + handedOver(cl.n2); n == 0 {
			t.Errorf("no connection handed to net/http by the std engine")
		}
	}
}

func TestGatewayForwardAppendsXForwardedFor(t *testing.T) {
	eachMode(t, testGatewayForwardAppendsXForwardedFor)
}

func testGatewayForwardAppendsXForwardedFor(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	a := do(t, http.MethodGet, cl.url1+"/orders/1", with(clientV("1.0.0"), "X-Forwarded-For", "10.0.0.9"), "")
	if a.code != http.StatusOK {
		t.Fatalf("code = %d; body %s", a.code, a.body)
	}
	// The caller's proxy, the caller as n1 saw it, n1 as n2 saw it.
	if got := strings.Split(a.echo.XFF, ", "); len(got) != 3 || got[0] != "10.0.0.9" {
		t.Errorf("X-Forwarded-For = %q, want 10.0.0.9 and two hops", a.echo.XFF)
	}
}

// --- refusals ---------------------------------------------------------------

func TestGatewayRefuses(t *testing.T) { eachMode(t, testGatewayRefuses) }

func testGatewayRefuses(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	tests := []struct {
		name   string
		path   string
		header map[string]string
		code   int
		retry  bool
		msg    []string // the error names each of these
	}{
		{name: "missing client version", path: "/greeter/x", header: map[string]string{api.HeaderClient: "web"},
			code: http.StatusBadRequest, msg: []string{api.HeaderClientVersion}},
		{name: "bad client version", path: "/greeter/x", header: clientV("one.two"),
			code: http.StatusBadRequest, msg: []string{api.HeaderClientVersion, "one.two"}},
		{name: "unknown service", path: "/nosuch/x", header: clientV("1.0.0"),
			code: http.StatusNotFound, msg: []string{"unknown service", "nosuch"}},
		{name: "no service named", path: "/", header: clientV("1.0.0"),
			code: http.StatusNotFound, msg: []string{"unknown service"}},
		{name: "no compatible version", path: "/greeter/x", header: clientV("5.0.0"),
			code: http.StatusNotFound, msg: []string{"no compatible version", "greeter", "web@5.0.0",
				`1.0.0 (active, clients ">= 1.0, < 2.0")`, `2.0.0 (active, clients ">= 2.0, < 3.0")`}},
		{name: "named container when no version serves the client", path: "/greeter/x",
			header: with(clientV("5.0.0"), api.HeaderContainer, "g1"),
			code:   http.StatusServiceUnavailable, retry: true, msg: []string{`"g1"`, "no compatible version"}},
		{name: "stale container id", path: "/greeter/x", header: with(clientV("1.0.0"), api.HeaderContainer, "gone"),
			code: http.StatusServiceUnavailable, retry: true, msg: []string{`"gone"`, "unknown"}},
		{name: "container of another version", path: "/greeter/x", header: with(clientV("1.0.0"), api.HeaderContainer, "g2"),
			code: http.StatusServiceUnavailable, retry: true, msg: []string{`"g2"`, "greeter@2.0.0"}},
		{name: "draining container named with an active alternative", path: "/pay/x",
			header: with(clientV("2.0.0"), api.HeaderContainer, "p1"),
			code:   http.StatusServiceUnavailable, retry: true, msg: []string{`"p1"`, "draining", "pay@1.0.0"}},
		{name: "second hop", path: "/orders/x", header: with(clientV("1.0.0"), api.HeaderHops, "1"),
			code: http.StatusServiceUnavailable, retry: true, msg: []string{api.HeaderHops, `"o2"`, `"n2"`}},
		{name: "second hop of a call routed by Host", path: "/x", header: with(clientV("1.0.0"), "Host", "orders", api.HeaderHops, "1"),
			code: http.StatusServiceUnavailable, retry: true, msg: []string{api.HeaderHops}},
		{name: "container refuses connections", path: "/dead/x", header: clientV("1.0.0"),
			code: http.StatusServiceUnavailable, retry: true, msg: []string{`"d1"`, "unreachable"}},
		{name: "container hangs up after the call was sent", path: "/broken/x", header: clientV("1.0.0"),
			code: http.StatusBadGateway, retry: false, msg: []string{`"b1"`, "failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, http.MethodPost, cl.url1+tt.path, tt.header, "body")
			if a.code != tt.code {
				t.Fatalf("code = %d, want %d; body %s", a.code, tt.code, a.body)
			}
			if got := a.header.Get(api.HeaderRetry) == "safe"; got != tt.retry {
				t.Errorf("%s: safe = %v, want %v", api.HeaderRetry, got, tt.retry)
			}
			if a.errorMsg == "" {
				t.Fatalf("no JSON error in %s", a.body)
			}
			for _, m := range tt.msg {
				if !strings.Contains(a.errorMsg, m) {
					t.Errorf("error %q does not name %q", a.errorMsg, m)
				}
			}
			if got := a.header.Get(api.HeaderServedBy); got != "" {
				t.Errorf("a refused call carries %s: %q", api.HeaderServedBy, got)
			}
		})
	}
}

// TestGatewayRemoteRefusalPassesThrough: a call forwarded to a gateway whose
// own table has no candidate any more comes back to the caller as refused,
// safe to retry: the two tables disagree, and a fresh choice may succeed.
func TestGatewayRemoteRefusalPassesThrough(t *testing.T) {
	eachMode(t, testGatewayRemoteRefusalPassesThrough)
}

func testGatewayRemoteRefusalPassesThrough(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	// n2's view: o2 is starting again.
	cs := append([]api.Container(nil), cl.containers...)
	for i := range cs {
		if cs[i].ID == "o2" {
			st := *cs[i].Status
			st.State = api.ContainerStarting
			cs[i].Status = &st
		}
	}
	stale := routing.NewTable(cl.services, cs, cl.nodes)
	n2, err := NewGateway(GatewayConfig{NodeID: "n2", Table: func() *routing.Table { return stale }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(n2)
	defer srv.Close()
	// n1 still believes o2 serves, on a node whose gateway is srv.
	nodes := []api.Node{cl.nodes[0], {ID: "n2", Gateway: srv.Listener.Addr().String(), Status: api.NodeReady}}
	cl.table.Store(routing.NewTable(cl.services, cl.containers, nodes))

	a := do(t, http.MethodPost, cl.url1+"/orders/1", clientV("1.0.0"), "x")
	if a.code != http.StatusServiceUnavailable || a.header.Get(api.HeaderRetry) != "safe" {
		t.Fatalf("code %d, %s %q; want 503 safe; body %s", a.code, api.HeaderRetry, a.header.Get(api.HeaderRetry), a.body)
	}
	if !strings.Contains(a.errorMsg, "no running container") {
		t.Errorf("error %q does not say why n2 refused", a.errorMsg)
	}
}

// TestGatewayRemoteGatewayUnreachable: a node whose gateway cannot be dialled
// is a refusal safe to retry.
func TestGatewayRemoteGatewayUnreachable(t *testing.T) {
	eachMode(t, testGatewayRemoteGatewayUnreachable)
}

func testGatewayRemoteGatewayUnreachable(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	nodes := []api.Node{cl.nodes[0], {ID: "n2", Gateway: deadAddr(t), Status: api.NodeReady}}
	cl.table.Store(routing.NewTable(cl.services, cl.containers, nodes))
	a := do(t, http.MethodPost, cl.url1+"/orders/1", clientV("1.0.0"), "x")
	if a.code != http.StatusServiceUnavailable || a.header.Get(api.HeaderRetry) != "safe" {
		t.Fatalf("code %d, %s %q; want 503 safe; body %s", a.code, api.HeaderRetry, a.header.Get(api.HeaderRetry), a.body)
	}
	if !strings.Contains(a.errorMsg, "gateway") {
		t.Errorf("error %q does not say the gateway was unreachable", a.errorMsg)
	}
}

// TestGatewayTableChangesUnderCall: the table the gateway reads after
// counting a call no longer admits its container, so the call is refused as
// safe to retry and the container never sees it.
func TestGatewayTableChangesUnderCall(t *testing.T) { eachMode(t, testGatewayTableChangesUnderCall) }

func testGatewayTableChangesUnderCall(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	before := cl.table.Load()
	cs := append([]api.Container(nil), cl.containers...)
	for i := range cs {
		if cs[i].ID == "s1" {
			st := *cs[i].Status
			st.State = api.ContainerDraining
			cs[i].Status = &st
		}
	}
	after := routing.NewTable(cl.services, cs, cl.nodes)
	var reads atomic.Int32
	gw, err := NewGateway(GatewayConfig{NodeID: "n1", Table: func() *routing.Table {
		if reads.Add(1) == 1 {
			return before
		}
		return after
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	a := do(t, http.MethodPost, srv.URL+"/slow/x", clientV("1.0.0"), "x")
	if a.code != http.StatusServiceUnavailable || a.header.Get(api.HeaderRetry) != "safe" {
		t.Fatalf("code %d, %s %q; want 503 safe; body %s", a.code, api.HeaderRetry, a.header.Get(api.HeaderRetry), a.body)
	}
	if n := cl.slowCalls.Load(); n != 0 {
		t.Errorf("the container received %d calls, want 0", n)
	}
	if n := gw.inflight.Total("s1"); n != 0 {
		t.Errorf("in flight after the refusal: %d, want 0", n)
	}
}

// --- in flight and metrics --------------------------------------------------

func TestGatewayCountsInflight(t *testing.T) { eachMode(t, testGatewayCountsInflight) }

func testGatewayCountsInflight(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	const calls = 3
	var wg sync.WaitGroup
	codes := make(chan int, calls)
	for range calls {
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, cl.url1+"/slow/x", nil)
			req.Header.Set(api.HeaderClientVersion, "1.0.0")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	waitFor(t, "3 calls in flight to s1", func() bool { return cl.inflight1.Total("s1") == calls })
	if got := cl.inflight1.Snapshot("s1"); got["slow@1.0.0"] != calls || len(got) != 1 {
		t.Errorf("Snapshot(s1) = %v, want slow@1.0.0: %d", got, calls)
	}
	m := do(t, http.MethodGet, cl.url1+MetricsPath, nil, "")
	if want := `coexist_gateway_inflight{container="s1"} 3`; !strings.Contains(string(m.body), want) {
		t.Errorf("metrics lack %q:\n%s", want, m.body)
	}
	cl.releaseSlow()
	wg.Wait()
	close(codes)
	var ok int
	for c := range codes {
		if c == http.StatusOK {
			ok++
		}
	}
	if ok != calls {
		t.Errorf("%d slow calls answered 200, want %d", ok, calls)
	}
	waitFor(t, "no call in flight to s1", func() bool { return cl.inflight1.Total("s1") == 0 })
}

// TestGatewayCallerGoesAway: a caller that gives up ends the call's count,
// and the call is counted as 499, not as a failure of the container.
func TestGatewayCallerGoesAway(t *testing.T) { eachMode(t, testGatewayCallerGoesAway) }

func testGatewayCallerGoesAway(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cl.url1+"/slow/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(api.HeaderClientVersion, "1.0.0")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	waitFor(t, "the call in flight", func() bool { return cl.inflight1.Total("s1") == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("caller got %v, want context.Canceled", err)
	}
	waitFor(t, "no call in flight", func() bool { return cl.inflight1.Total("s1") == 0 })
	want := `coexist_gateway_requests_total{code="499",service="slow",version="1.0.0"} 1`
	waitFor(t, "the call counted as 499", func() bool {
		return strings.Contains(string(do(t, http.MethodGet, cl.url1+MetricsPath, nil, "").body), want)
	})
}

func TestGatewayMetrics(t *testing.T) { eachMode(t, testGatewayMetrics) }

func testGatewayMetrics(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	do(t, http.MethodGet, cl.url1+"/greeter/x", clientV("1.4.0"), "")
	do(t, http.MethodGet, cl.url1+"/greeter/x", clientV("1.4.0"), "")
	do(t, http.MethodGet, cl.url1+"/greeter/x", clientV("9.0.0"), "")
	do(t, http.MethodGet, cl.url1+"/greeter/x", nil, "")
	do(t, http.MethodGet, cl.url1+"/pay/x", with(clientV("2.0.0"), api.HeaderContainer, "p1"), "")
	do(t, http.MethodGet, cl.url1+"/dead/x", clientV("1.0.0"), "")
	do(t, http.MethodGet, cl.url1+"/orders/x", with(clientV("1.0.0"), api.HeaderHops, "1"), "")
	do(t, http.MethodGet, cl.url1+"/nosuch/x", clientV("1.0.0"), "")

	a := do(t, http.MethodGet, cl.url1+MetricsPath, nil, "")
	if a.code != http.StatusOK {
		t.Fatalf("GET %s: %d", MetricsPath, a.code)
	}
	body := string(a.body)
	for _, want := range []string{
		`coexist_gateway_requests_total{code="2xx",service="greeter",version="1.0.0"} 2`,
		`coexist_gateway_requests_total{code="4xx",service="greeter",version=""} 2`,
		`coexist_gateway_request_duration_seconds_count{service="greeter",version="1.0.0"} 2`,
		`coexist_gateway_refused_total{reason="no_compatible",service="greeter"} 1`,
		`coexist_gateway_refused_total{reason="bad_request",service="greeter"} 1`,
		`coexist_gateway_refused_total{reason="retry",service="pay"} 1`,
		`coexist_gateway_refused_total{reason="upstream_unreachable",service="dead"} 1`,
		`coexist_gateway_refused_total{reason="hop_limit",service="orders"} 1`,
		`coexist_gateway_refused_total{reason="unknown_service",service=""} 1`,
		`coexist_gateway_requests_total{code="5xx",service="dead",version="1.0.0"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", body)
	}

	var rec httptest.ResponseRecorder
	rec.Body = new(bytes.Buffer)
	cl.n1.Metrics().ServeHTTP(&rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "coexist_gateway_requests_total") {
		t.Errorf("Metrics() does not serve the counters")
	}
	if a := do(t, http.MethodPost, cl.url1+MetricsPath, nil, ""); a.code != http.StatusMethodNotAllowed {
		t.Errorf("POST %s: %d, want 405", MetricsPath, a.code)
	}
}

func TestNewGatewayChecksConfig(t *testing.T) {
	table := func() *routing.Table { return routing.NewTable(nil, nil, nil) }
	for _, cfg := range []GatewayConfig{{Table: table}, {NodeID: "n1"}} {
		if _, err := NewGateway(cfg); err == nil {
			t.Errorf("NewGateway(%+v) = nil error", cfg)
		}
	}
}

func TestHostName(t *testing.T) {
	for in, want := range map[string]string{
		"orders": "orders", "orders:7780": "orders", "Orders:80": "orders",
		"[::1]:7780": "::1", "[::1]": "::1", "": "",
	} {
		if got := hostName(in); got != want {
			t.Errorf("hostName(%q) = %q, want %q", in, got, want)
		}
	}
}

// --- benchmark --------------------------------------------------------------

// BenchmarkGatewayLocal compares a call through the gateway to a local
// container with the same call made to the container directly.
func BenchmarkGatewayLocal(b *testing.B) {
	cl := newCluster(b, modeServe)
	target := cl.containers[0].Status.Endpoint // g1
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	run := func(b *testing.B, url string) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set(api.HeaderClient, "web")
		req.Header.Set(api.HeaderClientVersion, "1.2.0")
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("code %d", resp.StatusCode)
			}
		}
	}
	b.Run("direct", func(b *testing.B) { run(b, "http://"+target+"/greeter/hello") })
	b.Run("gateway", func(b *testing.B) { run(b, cl.url1+"/greeter/hello") })
	b.Run("gateway-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest(http.MethodGet, cl.url1+"/greeter/hello", nil)
			req.Header.Set(api.HeaderClientVersion, "1.2.0")
			for pb.Next() {
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	})
}

// stubTransport answers every call at once, without a network.
type stubTransport struct{}

func (stubTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: r,
		ProtoMajor: 1, ProtoMinor: 1}, nil
}

// BenchmarkGatewayHandler measures the gateway's own work on a call to a
// local container: ServeHTTP with a transport that answers at once.
func BenchmarkGatewayHandler(b *testing.B) {
	cl := newCluster(b, modeServe)
	gw, err := NewGateway(GatewayConfig{NodeID: "n1", Table: cl.table.Load, Transport: stubTransport{}})
	if err != nil {
		b.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://gateway/greeter/hello", nil)
	req.Header.Set(api.HeaderClient, "web")
	req.Header.Set(api.HeaderClientVersion, "1.2.0")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		gw.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("code %d", w.code)
		}
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

// handedOver returns how many connections gw's Serve handed to net/http.
func handedOver(gw *Gateway) float64 {
	var m dto.Metric
	if err := gw.handed.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
