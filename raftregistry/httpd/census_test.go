package httpd

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// censusEnv is newEnv with c1 (orders@1.0.0) running on n1 and the census
// reporter running.
func censusEnv(t *testing.T) *testEnv {
	t.Helper()
	e := newEnv(t)
	e.fake.applyNow(t, &state.SetContainerStatus{ID: "c1", Node: "n1", Status: state.StatusFromAPI(&api.ContainerStatus{
		State: api.ContainerRunning, Endpoint: "127.0.0.1:1",
		Services: []api.ServiceStatus{{Service: "orders", Version: "1.0.0", State: api.ServiceServing}}}, time.Now())})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.srv.RunCensus(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func webHeaders(instance string, calls string) http.Header {
	h := http.Header{}
	h.Set(api.HeaderInstance, instance)
	h.Set(api.HeaderClient, "web")
	h.Set(api.HeaderClientVersion, "1.5.0")
	if calls != "" {
		h.Set(api.HeaderCalls, calls)
	}
	return h
}

func TestCensusCountsWatchersAndRefusesStranding(t *testing.T) {
	e := censusEnv(t)
	r := doURL(t, e.hs.Client(), "GET", e.hs.URL+"/v1/services?stale", readSecret, "", webHeaders("i1", "orders"))
	if r.code != 200 {
		t.Fatalf("list services: %d %s", r.code, r.body)
	}
	var c api.Census
	eventually(t, "the watcher is in the census", func() bool {
		resp := e.do("GET", "/v1/census", readSecret, "")
		resp.decode(t, &c)
		return len(c.Watchers) == 1
	})
	w := c.Watchers[0]
	if w.Instance != "i1" || w.Kind != "client" || w.Name != "web" || w.Version != "1.5.0" || strings.Join(w.Calls, ",") != "orders" {
		t.Fatalf("watcher = %+v", w)
	}
	if len(c.Cohorts) != 1 || c.Cohorts[0].Instances != 1 {
		t.Fatalf("cohorts = %+v", c.Cohorts)
	}

	// orders@1.0.0 is the only version web@1.5.0 can call.
	r = e.do("DELETE", "/v1/services/orders/versions/1.0.0", opSecret, "")
	if r.code != http.StatusConflict || !strings.Contains(r.errorMessage(t), "web@1.5.0, 1 instance") {
		t.Fatalf("retire the only version of a live client: %d %s, want 409 naming web@1.5.0", r.code, r.body)
	}
	// Narrowing it to exclude 1.5.0 is refused the same way.
	r = e.do("PUT", "/v1/services/orders/versions/1.0.0", opSecret, `{"clients": ">= 1.6, < 2.0"}`)
	if r.code != http.StatusConflict || !strings.Contains(r.errorMessage(t), "web@1.5.0") {
		t.Fatalf("narrow the only version of a live client: %d %s, want 409", r.code, r.body)
	}
	r = e.do("DELETE", "/v1/services/orders/versions/1.0.0?force=true", opSecret, "")
	if r.code != 200 {
		t.Fatalf("forced retire: %d %s", r.code, r.body)
	}
}

func TestCensusBadHeaders(t *testing.T) {
	e := censusEnv(t)
	h := webHeaders("i1", "Not A Name")
	r := doURL(t, e.hs.Client(), "GET", e.hs.URL+"/v1/services", readSecret, "", h)
	if r.code != 400 || !strings.Contains(r.errorMessage(t), api.HeaderCalls) {
		t.Fatalf("bad %s: %d %s", api.HeaderCalls, r.code, r.body)
	}
	h = webHeaders("i1", "")
	h.Set(api.HeaderClientVersion, "v1")
	r = doURL(t, e.hs.Client(), "GET", e.hs.URL+"/v1/services", readSecret, "", h)
	if r.code != 400 || !strings.Contains(r.errorMessage(t), api.HeaderClientVersion) {
		t.Fatalf("bad %s: %d %s", api.HeaderClientVersion, r.code, r.body)
	}
}

func TestInForceWaitsForTheWatcher(t *testing.T) {
	e := censusEnv(t)
	idx := e.fake.st.Index(state.TableServices)
	// A watcher that has seen the services table up to idx-1 only.
	go func() {
		_, _ = send(e.hs.Client(), "GET", e.hs.URL+"/v1/services?stale&index="+itoa(idx-1), readSecret, "", webHeaders("slow", ""))
	}()
	var f api.InForce
	eventually(t, "the lagging watcher is named", func() bool {
		e.do("GET", "/v1/census/in-force?index="+itoa(idx), readSecret, "").decode(t, &f)
		return !f.InForce && len(f.Lagging) == 1 && f.Lagging[0].Instance == "slow"
	})
	// It asks again, acknowledging idx: the change is in force, and a
	// waiting in-force query returns.
	got := make(chan *response, 1)
	go func() {
		r, _ := send(e.hs.Client(), "GET", e.hs.URL+"/v1/census/in-force?wait=20s&index="+itoa(idx), readSecret, "", nil)
		got <- r
	}()
	time.Sleep(100 * time.Millisecond)
	go func() {
		_, _ = send(e.hs.Client(), "GET", e.hs.URL+"/v1/services?stale&wait=1s&index="+itoa(idx), readSecret, "", webHeaders("slow", ""))
	}()
	select {
	case r := <-got:
		r.decode(t, &f)
		if !f.InForce {
			t.Fatalf("in-force after the acknowledgement: %s", r.body)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("in-force did not return once the watcher acknowledged")
	}
	if r := e.do("GET", "/v1/census/in-force", readSecret, ""); r.code != 400 || !strings.Contains(r.errorMessage(t), "index") {
		t.Fatalf("in-force without index: %d %s", r.code, r.body)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

// TestServiceShowsTheCohortsEachVersionServes: GET /v1/services/{s} names,
// per version, the live cohorts routed to it, so that an unused version
// shows as such.
func TestServiceShowsTheCohortsEachVersionServes(t *testing.T) {
	e := censusEnv(t)
	e.fake.applyNow(t, &state.DeclareVersion{Service: "orders", Version: "2.0.0", Clients: ">= 2.0, < 3.0"})
	r := doURL(t, e.hs.Client(), "GET", e.hs.URL+"/v1/services?stale", readSecret, "", webHeaders("i1", "orders"))
	if r.code != 200 {
		t.Fatalf("list services: %d %s", r.code, r.body)
	}
	var svc api.Service
	eventually(t, "the service names web under 1.0.0", func() bool {
		e.do("GET", "/v1/services/orders", readSecret, "").decode(t, &svc)
		return len(svc.Served["1.0.0"]) == 1
	})
	if c := svc.Served["1.0.0"][0]; c.Name != "web" || c.Version != "1.5.0" || c.Instances != 1 {
		t.Fatalf("served[1.0.0] = %+v, want web@1.5.0, 1 instance", svc.Served["1.0.0"])
	}
	if got, ok := svc.Served["2.0.0"]; !ok || len(got) != 0 {
		t.Fatalf("served[2.0.0] = %v (present %v), want an empty list: no live client uses it", got, ok)
	}
	raw := e.do("GET", "/v1/services/orders", readSecret, "")
	if !strings.Contains(string(raw.body), `"2.0.0":[]`) {
		t.Fatalf("the answer does not show 2.0.0 unused: %s", raw.body)
	}
}
