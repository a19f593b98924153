package httpd

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// waiting installs a hook that reports each time a blocking query starts to
// wait, and returns the channel it reports on and a counter.
func (e *testEnv) waiting() (<-chan struct{}, *atomic.Int32) {
	ch := make(chan struct{}, 16)
	var n atomic.Int32
	e.srv.waitHook = func() {
		n.Add(1)
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	return ch, &n
}

// async sends a request in the background; a failure to send is a response
// with code 0 and the error as body.
func (e *testEnv) async(method, path, token, body string) <-chan *response {
	out := make(chan *response, 1)
	go func() {
		r, err := send(e.hs.Client(), method, e.hs.URL+path, token, body, nil)
		if err != nil {
			r = &response{body: err.Error()}
		}
		out <- r
	}()
	return out
}

func await[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func TestBlockingAnswersAtOnce(t *testing.T) {
	e := newEnv(t)
	_, waits := e.waiting()
	idx := e.fake.st.Index(state.TableNodes)
	for _, q := range []string{
		"",                                // not blocking
		"?index=0&wait=1m",                // index 0 never blocks
		"?index=1&wait=1m",                // stale index
		"?index=" + u(idx-1) + "&wait=1m", // just behind
	} {
		r := e.do("GET", "/v1/nodes"+q, readSecret, "")
		if r.code != http.StatusOK {
			t.Fatalf("%s: %d %s", q, r.code, r.body)
		}
		wantIndex(t, r, idx)
	}
	if n := waits.Load(); n != 0 {
		t.Errorf("waited %d times, want 0", n)
	}
}

func TestBlockingWaitsForChange(t *testing.T) {
	e := newEnv(t)
	waiting, _ := e.waiting()
	idx := e.fake.st.Index(state.TableNodes)
	done := e.async("GET", "/v1/nodes?index="+u(idx)+"&wait=1m", readSecret, "")
	await(t, "the query to wait", waiting)
	select {
	case r := <-done:
		t.Fatalf("answered before any change: %d %s", r.code, r.body)
	default:
	}
	// A change to another table does not answer it.
	e.fake.applyNow(t, &state.DeclareVersion{Service: "payments", Version: "1.0.0", Clients: ">= 1.0"})
	res := e.fake.applyNow(t, &state.RegisterNode{ID: "n3", Gateway: "10.0.0.3:8080"})
	r := await(t, "the answer", done)
	if r.code != http.StatusOK {
		t.Fatalf("answer = %d %s", r.code, r.body)
	}
	wantIndex(t, r, res.Index)
	var nodes []api.Node
	r.decode(t, &nodes)
	if len(nodes) != 3 {
		t.Errorf("nodes = %+v", nodes)
	}
}

func TestBlockingWaitEnds(t *testing.T) {
	e := newEnv(t)
	_, waits := e.waiting()
	idx := e.fake.st.Index(state.TableContainers)
	r := e.do("GET", "/v1/containers?index="+u(idx)+"&wait=20ms", readSecret, "")
	if r.code != http.StatusOK {
		t.Fatalf("answer = %d %s", r.code, r.body)
	}
	wantIndex(t, r, idx)
	if waits.Load() == 0 {
		t.Error("answered without waiting")
	}
	var cts []api.Container
	r.decode(t, &cts)
	if len(cts) != 1 {
		t.Errorf("containers = %+v", cts)
	}
}

// TestBlockingOnMissingRecord waits on a container that does not exist yet.
func TestBlockingOnMissingRecord(t *testing.T) {
	e := newEnv(t)
	waiting, _ := e.waiting()
	idx := e.fake.st.Index(state.TableContainers)
	done := e.async("GET", "/v1/containers/c9?index="+u(idx), agent2Secret, "")
	await(t, "the query to wait", waiting)
	put := e.do("PUT", "/v1/containers/c9", opSecret,
		`{"node":"n2","services":[{"service":"orders","version":"2.0.0"}],"config":{"command":"/bin/x"}}`)
	if put.code != http.StatusOK {
		t.Fatalf("put = %d %s", put.code, put.body)
	}
	r := await(t, "the answer", done)
	if r.code != http.StatusOK || !strings.Contains(r.body, `"id":"c9"`) {
		t.Fatalf("answer = %d %s", r.code, r.body)
	}
	wantIndex(t, r, e.fake.st.Index(state.TableContainers))

	// Without a wait, a missing record is a 404 that still says its index.
	r = e.do("GET", "/v1/containers/c10", readSecret, "")
	if r.code != http.StatusNotFound || r.header.Get(api.HeaderIndex) == "" {
		t.Errorf("missing = %d %v", r.code, r.header)
	}
}

// TestBlockingRoute checks that a route query wakes on a change to nodes,
// one of the three tables it reads.
func TestBlockingRoute(t *testing.T) {
	e := newEnv(t)
	waiting, _ := e.waiting()
	idx := max(e.fake.st.Index(state.TableServices), e.fake.st.Index(state.TableContainers), e.fake.st.Index(state.TableNodes))
	done := e.async("GET", "/v1/route?service=orders&client_version=1.0.0&index="+u(idx), readSecret, "")
	await(t, "the query to wait", waiting)
	res := e.fake.applyNow(t, &state.SetNodeStatus{ID: "n1", Status: api.NodeDown})
	r := await(t, "the answer", done)
	if r.code != http.StatusNotFound {
		t.Fatalf("answer = %d %s", r.code, r.body)
	}
	wantIndex(t, r, res.Index)
}

// TestBlockingAfterRestore answers a waiting query when a restore takes the
// index backwards.
func TestBlockingAfterRestore(t *testing.T) {
	e := newEnv(t)
	snap := e.fake.st.Snapshot()
	e.fake.applyNow(t, &state.RegisterNode{ID: "n3", Gateway: "10.0.0.3:8080"})
	waiting, _ := e.waiting()
	idx := e.fake.st.Index(state.TableNodes)
	done := e.async("GET", "/v1/nodes?index="+u(idx), readSecret, "")
	await(t, "the query to wait", waiting)
	e.fake.st.Restore(snap)
	r := await(t, "the answer", done)
	if r.code != http.StatusOK {
		t.Fatalf("answer = %d %s", r.code, r.body)
	}
	wantIndex(t, r, snap.Indexes["nodes"])
}

func TestBlockingClientGone(t *testing.T) {
	e := newEnv(t)
	waiting, _ := e.waiting()
	idx := e.fake.st.Index(state.TableNodes)
	req, err := http.NewRequest("GET", e.hs.URL+"/v1/nodes?index="+u(idx), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+readSecret)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		resp, err := e.hs.Client().Do(req.WithContext(ctx))
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	await(t, "the query to wait", waiting)
	cancel()
	if err := await(t, "the cancelled request", errc); err == nil {
		t.Error("cancelled request succeeded")
	}
	// The handler gives up too: its request counter moves.
	eventually(t, "the handler to return", func() bool {
		r := e.do("GET", "/v1/metrics", readSecret, "")
		return strings.Contains(r.body, `coexist_http_requests_total{code="5xx",method="GET",route="/v1/nodes"} 1`)
	})
}

func TestWaitFor(t *testing.T) {
	for _, tc := range []struct {
		asked, base time.Duration
	}{
		{0, defaultWait},
		{-time.Second, defaultWait},
		{30 * time.Second, 30 * time.Second},
		{time.Hour, maxWait},
		{10 * time.Millisecond, 10 * time.Millisecond},
	} {
		for range 100 {
			got := waitFor(tc.asked)
			if got < tc.base || got >= tc.base+tc.base/16+1 {
				t.Fatalf("waitFor(%s) = %s, want in [%s, %s]", tc.asked, got, tc.base, tc.base+tc.base/16)
			}
		}
	}
}

func u(n uint64) string { return strconv.FormatUint(n, 10) }
