package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// The tests in this file run real processes (`coexist agent --dev` and
// greeter containers) and hold the census of docs/design.md §5 to account.

// TestRetireOnlyVersionOfLiveClientIsRefused: a live 1.x SDK client that
// calls greeter, whose only version for it is 1.0.0: retiring 1.0.0 is a
// 409 naming web@1.5.0; with ?force=true it retires.
func TestRetireOnlyVersionOfLiveClientIsRefused(t *testing.T) {
	c := startDev(t)
	c.declare("1.0.0", ">= 1.0, < 2.0")
	c.declare("2.0.0", ">= 2.0")
	c.container("g1", "1.0.0")
	c.container("g2", "2.0.0")
	c.waitRunning("g1", "g2")
	cl := c.newClient("1.5.0", nil, nil)
	if a := call(context.Background(), cl, ""); a.err != nil || a.status != 200 {
		t.Fatalf("call: %v %d", a.err, a.status)
	}
	// The census learns of the call from the client's next watch request,
	// which the call itself starts.
	c.waitFor(10*time.Second, "the census to list web@1.5.0 calling greeter", func() bool {
		cs, _, err := c.api.Census().Get(context.Background(), nil)
		if err != nil {
			return false
		}
		for _, co := range cs.Cohorts {
			if co.Name == "web" && co.Version == "1.5.0" && slices.Contains(co.Calls, "greeter") {
				return true
			}
		}
		return false
	})
	_, _, err := c.api.Services().Retire(context.Background(), "greeter", "1.0.0", nil)
	if !api.IsConflict(err) || !strings.Contains(err.Error(), "web@1.5.0, 1 instance") {
		t.Fatalf("retire greeter@1.0.0 with web@1.5.0 live: %v; want 409 naming web@1.5.0", err)
	}
	if st := c.versionState("1.0.0"); st != api.VersionActive {
		t.Fatalf("greeter@1.0.0 is %s after a refused retire", st)
	}
	// Retiring 2.0.0, which web@1.5.0 does not use, is not refused.
	if _, _, err := c.api.Services().Retire(context.Background(), "greeter", "2.0.0", nil); err != nil {
		t.Fatalf("retire greeter@2.0.0: %v", err)
	}
	if _, _, err := c.api.Services().Retire(context.Background(), "greeter", "1.0.0", &api.WriteOptions{Force: true}); err != nil {
		t.Fatalf("forced retire: %v", err)
	}
	c.waitFor(30*time.Second, "greeter@1.0.0 to retire", func() bool { return c.versionState("1.0.0") == api.VersionRetired })
}

// delayingProxy is a reverse proxy to the registry that holds every answer
// to a blocking query for delay: the watchers behind it see every change
// that much later.
func delayingProxy(t *testing.T, registry string, delay time.Duration) string {
	t.Helper()
	u, err := url.Parse(registry)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = delayed{http.DefaultTransport, delay}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

type delayed struct {
	base  http.RoundTripper
	delay time.Duration
}

func (d delayed) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.base.RoundTrip(r)
	if err == nil && r.URL.Query().Get("index") != "" {
		select {
		case <-time.After(d.delay):
		case <-r.Context().Done():
		}
	}
	return resp, err
}

// drainSeen polls clients and records when each first routes from a table
// in which version is no longer active.
type drainSeen struct {
	mu   sync.Mutex
	seen map[*Client]time.Time
}

func watchDrainSeen(stop <-chan struct{}, clients []*Client, version string) *drainSeen {
	d := &drainSeen{seen: map[*Client]time.Time{}}
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
			for _, cl := range clients {
				info, _ := cl.Route("greeter")
				for _, cd := range info.Candidates {
					if cd.Version == version && cd.State != api.VersionActive {
						d.mu.Lock()
						if _, ok := d.seen[cl]; !ok {
							d.seen[cl] = time.Now()
						}
						d.mu.Unlock()
					}
				}
			}
		}
	}()
	return d
}

// TestRetireWaitsForLaggingClients: retire 1.0.0 while 1.1.0 runs, under
// 500 calls/s or more from SDK clients whose watches a proxy holds back two
// seconds: no call fails, and 1.0.0 retires, and its container stops, only
// after every client has seen it draining.
func TestRetireWaitsForLaggingClients(t *testing.T) {
	c := startDev(t)
	c.declare("1.0.0", ">= 1.0, < 2.0")
	c.container("g1", "1.0.0")
	c.waitRunning("g1")
	slow := delayingProxy(t, c.registry, 2*time.Second)
	var clients []*Client
	var callers []*caller
	stop := make(chan struct{})
	var wgs []*sync.WaitGroup
	for range 4 {
		cl := c.newClient("1.3.0", nil, func(cfg *Config) { cfg.Registry = slow })
		clients = append(clients, cl)
		cr := newCaller(cl, "1.3.0", "")
		callers = append(callers, cr)
		wgs = append(wgs, cr.run(stop, 16, time.Millisecond))
	}
	loadFrom := time.Now()
	stopSeen := make(chan struct{})
	defer close(stopSeen)
	seen := watchDrainSeen(stopSeen, clients, "1.0.0")

	c.declare("1.1.0", ">= 1.0, < 2.0")
	c.container("g2", "1.1.0")
	c.waitRunning("g2")
	// Retire 1.0.0 as soon as the registry holds 1.1.0 running: the
	// clients, two seconds behind, still route to 1.0.0.
	if _, _, err := c.api.Services().Retire(context.Background(), "greeter", "1.0.0", nil); err != nil {
		t.Fatalf("retire greeter@1.0.0: %v", err)
	}
	var stoppedAt time.Time
	c.waitFor(60*time.Second, "g1 to stop", func() bool {
		ct := c.info("g1")
		if ct != nil && ct.Status != nil && ct.Status.State == api.ContainerStopped {
			stoppedAt = time.Now()
			return true
		}
		return false
	})
	close(stop)
	for _, wg := range wgs {
		wg.Wait()
	}
	n := 0
	for _, cr := range callers {
		n += len(cr.all())
	}
	rate := float64(n) / time.Since(loadFrom).Seconds()
	// 64 callers with a 1ms pause offer well over 500 calls/s on an idle
	// machine; a shared one delivers less, and the rate is only logged
	// above a floor that shows the load was real.
	t.Logf("%d calls, %.0f calls/s", n, rate)
	if rate < 100 {
		t.Errorf("load was %.0f calls/s, want 100 or more", rate)
	}
	s, _, err := c.api.Services().Info(context.Background(), "greeter", nil)
	if err != nil {
		t.Fatal(err)
	}
	var retiredAt time.Time
	for _, v := range s.Versions {
		if v.Version == "1.0.0" && v.RetiredAt != nil {
			retiredAt = *v.RetiredAt
		}
	}
	if retiredAt.IsZero() {
		t.Fatalf("greeter@1.0.0 not retired: %+v", s.Versions)
	}
	seen.mu.Lock()
	for i, cl := range clients {
		at, ok := seen.seen[cl]
		switch {
		case !ok:
			t.Errorf("client %d never saw greeter@1.0.0 draining", i)
		case retiredAt.Before(at):
			t.Errorf("greeter@1.0.0 retired at %s, before client %d saw it draining at %s", retiredAt.Format("15:04:05.000"), i, at.Format("15:04:05.000"))
		case stoppedAt.Before(at):
			t.Errorf("g1 stopped before client %d saw greeter@1.0.0 draining", i)
		}
	}
	seen.mu.Unlock()
	for _, cr := range callers {
		cr.verify(t, c, nil)
	}
}

// TestNarrowingInForceExcludesClients: under load from web@1.3.0, narrow
// greeter@1.1.0 to exclude it while 1.0.0 still serves it: the write
// returns, and once it is in force, no call of web@1.3.0 is served by 1.1.0.
func TestNarrowingInForceExcludesClients(t *testing.T) {
	c := startDev(t)
	c.declare("1.0.0", ">= 1.0, < 2.0")
	c.declare("1.1.0", ">= 1.0, < 2.0")
	c.container("g1", "1.0.0")
	c.container("g2", "1.1.0")
	c.waitRunning("g1", "g2")
	cr := newCaller(c.newClient("1.3.0", nil, nil), "1.3.0", "")
	stop := make(chan struct{})
	wg := cr.run(stop, 8, 2*time.Millisecond)
	c.waitFor(10*time.Second, "1.1.0 to serve", func() bool { return cr.lastVersion() == "1.1.0" })

	_, wm, err := c.api.Services().Declare(context.Background(), "greeter", "1.1.0", api.VersionRequest{Clients: ">= 1.5, < 2.0"}, nil)
	if err != nil {
		t.Fatalf("narrow greeter@1.1.0: %v", err)
	}
	f, err := c.api.Census().InForce(context.Background(), wm.LastIndex, 30*time.Second)
	if err != nil || !f.InForce {
		t.Fatalf("in force at %d: %+v, %v", wm.LastIndex, f, err)
	}
	inForce := time.Now()
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	after := 0
	for _, a := range cr.all() {
		if a.start.Before(inForce) {
			continue
		}
		after++
		if a.err != nil || a.status != 200 {
			t.Errorf("call at %s failed: %d %v", a.start.Format("15:04:05.000"), a.status, a.err)
		} else if a.version != "1.0.0" {
			t.Errorf("call at %s, after the narrowing was in force, served by %q", a.start.Format("15:04:05.000"), a.servedBy)
		}
	}
	if after < 50 {
		t.Errorf("only %d calls after the narrowing was in force", after)
	}
}

// TestClosedClientLeavesTheCensus: a client closed cleanly leaves the
// census at once (DELETE /v1/census/watchers/{instance}), so that retiring
// the version only it used is not refused for census_ttl (10 s by default)
// after it is gone.
func TestClosedClientLeavesTheCensus(t *testing.T) {
	c := startDev(t)
	c.declare("1.0.0", ">= 1.0, < 2.0")
	c.declare("2.0.0", ">= 2.0")
	c.container("g1", "1.0.0")
	c.container("g2", "2.0.0")
	c.waitRunning("g1", "g2")
	cl := c.newClient("1.5.0", nil, nil)
	if a := call(context.Background(), cl, ""); a.err != nil || a.status != 200 {
		t.Fatalf("call: %v %d", a.err, a.status)
	}
	counted := func() bool {
		cs, _, err := c.api.Census().Get(context.Background(), nil)
		if err != nil {
			return true
		}
		for _, co := range cs.Cohorts {
			if co.Name == "web" && co.Version == "1.5.0" {
				return true
			}
		}
		return false
	}
	c.waitFor(10*time.Second, "the census to list web@1.5.0", counted)
	cl.Close()
	start := time.Now()
	c.waitFor(3*time.Second, "the census to drop the closed web@1.5.0 (well before census_ttl)", func() bool { return !counted() })
	t.Logf("the census dropped the closed client after %s", time.Since(start).Round(time.Millisecond))
	if _, _, err := c.api.Services().Retire(context.Background(), "greeter", "1.0.0", nil); err != nil {
		t.Fatalf("retire greeter@1.0.0 once its only client closed: %v", err)
	}
}
