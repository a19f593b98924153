package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/coexist-dev/coexist/api"
)

const fakeToken = "fake-registry-token-0123456789"

// fakeRegistry serves the three lists a Client watches, as blocking queries
// with an index per table, from state a test sets. It can be taken down
// (every query fails with 503, as with no leader) and have its indexes go
// backwards (as after a snapshot restore).
type fakeRegistry struct {
	t   testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	changed    chan struct{} // closed and replaced on every change
	index      uint64
	idx        [api.NumFleetTables]uint64
	services   []api.Service
	containers []api.Container
	nodes      []api.Node
	down       bool
	noLeader   bool // answer as a restarted server before its election: empty, index 1

	queries atomic.Int64
}

func newFakeRegistry(t testing.TB) *fakeRegistry {
	t.Helper()
	f := &fakeRegistry{t: t, changed: make(chan struct{}), index: 10}
	f.idx = [api.NumFleetTables]uint64{1, 1, 1}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.close)
	return f
}

func (f *fakeRegistry) close() {
	f.mu.Lock()
	f.down = true
	f.broadcastLocked()
	f.mu.Unlock()
	f.srv.Close()
}

func (f *fakeRegistry) url() string { return f.srv.URL }

func (f *fakeRegistry) broadcastLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// set replaces the state; each table whose content changed gets a new index.
func (f *fakeRegistry) set(services []api.Service, containers []api.Container, nodes []api.Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	bump := func(i api.FleetTable, changed bool) {
		if changed {
			f.index++
			f.idx[i] = f.index
		}
	}
	bump(api.FleetServices, !jsonEqual(f.services, services))
	bump(api.FleetContainers, !jsonEqual(f.containers, containers))
	bump(api.FleetNodes, !jsonEqual(f.nodes, nodes))
	f.services, f.containers, f.nodes = services, containers, nodes
	f.broadcastLocked()
}

// restore replaces the state and sets every index back to a low value, as a
// registry restored from an old snapshot would.
func (f *fakeRegistry) restore(services []api.Service, containers []api.Container, nodes []api.Node) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index = 3
	f.idx = [api.NumFleetTables]uint64{2, 3, 2}
	f.services, f.containers, f.nodes = services, containers, nodes
	f.broadcastLocked()
}

func (f *fakeRegistry) setNoLeader(noLeader bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noLeader = noLeader
	f.broadcastLocked()
}

func (f *fakeRegistry) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	f.broadcastLocked()
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func (f *fakeRegistry) serve(w http.ResponseWriter, r *http.Request) {
	f.queries.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+fakeToken {
		writeJSON(w, http.StatusForbidden, api.ErrorResponse{Error: "permission denied"})
		return
	}
	which := api.FleetTable(-1)
	switch r.URL.Path {
	case "/v1/services":
		which = api.FleetServices
	case "/v1/containers":
		which = api.FleetContainers
	case "/v1/nodes":
		which = api.FleetNodes
	}
	if which < 0 || r.Method != http.MethodGet {
		writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: "no such endpoint"})
		return
	}
	if _, ok := r.URL.Query()["stale"]; !ok {
		f.t.Errorf("watch of %s without ?stale", r.URL.Path)
	}
	want, _ := strconv.ParseUint(r.URL.Query().Get("index"), 10, 64)
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		f.mu.Lock()
		down, idx, ch := f.down, f.idx[which], f.changed
		if f.noLeader {
			f.mu.Unlock()
			w.Header().Set(api.HeaderIndex, "1")
			w.Header().Set(api.HeaderKnownLeader, "false")
			w.Header().Set(api.HeaderLastContact, "0")
			writeJSON(w, http.StatusOK, []struct{}{})
			return
		}
		var v any
		switch which {
		case api.FleetServices:
			v = f.services
		case api.FleetContainers:
			v = f.containers
		case api.FleetNodes:
			v = f.nodes
		}
		f.mu.Unlock()
		if down {
			writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "no leader"})
			return
		}
		if want == 0 || idx != want {
			w.Header().Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
			w.Header().Set(api.HeaderKnownLeader, "true")
			w.Header().Set(api.HeaderLastContact, "0")
			if v == nil || jsonEqual(v, nil) {
				v = []struct{}{}
			}
			writeJSON(w, http.StatusOK, v)
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			want = 0 // answer unchanged
		case <-r.Context().Done():
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// fakeGateway records the calls it gets and answers each with the handler
// of the container the call names.
type fakeGateway struct {
	srv *httptest.Server

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	calls    []recorded
}

type recorded struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         string
}

func newFakeGateway(t testing.TB) *fakeGateway {
	t.Helper()
	g := &fakeGateway{handlers: map[string]http.HandlerFunc{}}
	g.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		id := r.Header.Get(api.HeaderContainer)
		g.mu.Lock()
		g.calls = append(g.calls, recorded{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone(), body.String()})
		h := g.handlers[id]
		g.mu.Unlock()
		if h == nil {
			writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: "no container " + id})
			return
		}
		h(w, r)
	}))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) addr() string { return strings.TrimPrefix(g.srv.URL, "http://") }

func (g *fakeGateway) handle(container string, h http.HandlerFunc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handlers[container] = h
}

func (g *fakeGateway) recorded() []recorded {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]recorded(nil), g.calls...)
}

// serveAs answers 200 as container id of service@version would.
func serveAs(ref, id string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderServedBy, ref+" "+id)
		_, _ = w.Write([]byte("served by " + ref + " " + id))
	}
}

// refuseSafe answers as a gateway refusing a call that reached no service.
func refuseSafe(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set(api.HeaderRetry, "safe")
	writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "container is not the right choice"})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Builders of registry records.

func sv(service, v, clients, state string) api.ServiceVersion {
	return api.ServiceVersion{Service: service, Version: v, Clients: clients, State: state}
}

func svc(name string, versions ...api.ServiceVersion) api.Service {
	return api.Service{Name: name, Versions: versions}
}

func nodeRec(id, gateway string) api.Node {
	return api.Node{ID: id, Gateway: gateway, Address: "127.0.0.1", Status: api.NodeReady}
}

func running(id, nodeID string, refs ...string) api.Container {
	c := api.Container{ID: id, Node: nodeID, Desired: api.DesiredPresent, Driver: "exec",
		Status: &api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:1"}}
	for _, ref := range refs {
		s, v, _ := strings.Cut(ref, "@")
		c.Services = append(c.Services, api.ServiceRef{Service: s, Version: v})
		c.Status.Services = append(c.Status.Services, api.ServiceStatus{Service: s, Version: v, State: api.ServiceServing})
	}
	return c
}

// newTestClient starts a Client against f, closed at the end of the test.
func newTestClient(t testing.TB, f *fakeRegistry, cfg Config) *Client {
	t.Helper()
	cfg.Registry, cfg.Token = f.url(), fakeToken
	if cfg.Name == "" {
		cfg.Name = "web"
	}
	if cfg.InitialTimeout == 0 {
		cfg.InitialTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t, nil)
	}
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// testLogger logs to the test, and to buf when it is not nil.
func testLogger(t testing.TB, buf *syncBuffer) hclog.Logger {
	var w interface{ Write([]byte) (int, error) } = testWriter{t}
	if buf != nil {
		w = multiWriter{testWriter{t}, buf}
	}
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Debug, Output: w})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type multiWriter struct {
	a testWriter
	b *syncBuffer
}

func (m multiWriter) Write(p []byte) (int, error) {
	_, _ = m.a.Write(p)
	return m.b.Write(p)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.Counter.GetValue()
	}
	return m.Gauge.GetValue()
}

// countSeries counts the series of the named families in g.
func countSeries(g prometheus.Gatherer, names ...string) (int, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, mf := range mfs {
		for _, name := range names {
			if mf.GetName() == name {
				n += len(mf.GetMetric())
			}
		}
	}
	return n, nil
}
