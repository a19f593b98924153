package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// routeOf is the version the client would call now.
func routeOf(cl *Client) string {
	r, err := cl.Route("greeter")
	if err != nil {
		return ""
	}
	return r.Version
}

// A 1.x client and a 2.x client are each served only by a compatible
// version; when a newer compatible version becomes healthy they move to it
// within one watch round; when it is retired they move back, with zero
// failed calls throughout, long calls in flight included.
func TestClientsFollowVersions(t *testing.T) {
	c := startDev(t)
	c.declare("1.2.0", ">= 1.0, < 2.0")
	c.declare("2.0.0", ">= 2.0, < 3.0")
	c.container("g120", "1.2.0")
	c.container("g200", "2.0.0")
	c.waitRunning("g120", "g200")

	v1 := newCaller(c.newClient("1.3.0", nil, nil), "1.3.0", "")
	v2 := newCaller(c.newClient("2.1.0", nil, nil), "2.1.0", "")
	// Slow calls, in flight when versions are retired.
	slow1 := newCaller(v1.cl, "1.3.0", "")
	slow2 := newCaller(v2.cl, "2.1.0", "")
	slow1.query, slow2.query = "?delay=300ms", "?delay=300ms"
	slow1.timeout, slow2.timeout = 10*time.Second, 10*time.Second
	stop := make(chan struct{})
	var wgs []*sync.WaitGroup
	for _, cr := range []*caller{v1, v2} {
		wgs = append(wgs, cr.run(stop, 2, 5*time.Millisecond))
	}
	for _, cr := range []*caller{slow1, slow2} {
		wgs = append(wgs, cr.run(stop, 2, 0))
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	c.waitFor(5*time.Second, "both clients to be served", func() bool {
		return v1.lastVersion() == "1.2.0" && v2.lastVersion() == "2.0.0"
	})

	// Newer compatible versions come up.
	c.declare("1.3.0", ">= 1.0, < 2.0")
	c.declare("2.1.0", ">= 2.0, < 3.0")
	c.container("g130", "1.3.0")
	c.container("g210", "2.1.0")
	for _, m := range []struct {
		id, ver string
		cr      *caller
	}{{"g130", "1.3.0", v1}, {"g210", "2.1.0", v2}} {
		c.waitRunning(m.id)
		seen := time.Now()
		// One watch round: the registry's answer to the blocking query
		// already outstanding.
		c.waitFor(time.Second, "client "+m.cr.ver+" to route to "+m.ver, func() bool { return routeOf(m.cr.cl) == m.ver })
		c.waitFor(2*time.Second, "client "+m.cr.ver+" to be served by "+m.ver, func() bool { return m.cr.lastVersion() == m.ver })
		t.Logf("client %s served by %s %s after the registry reported it running", m.cr.ver, m.ver, time.Since(seen).Round(time.Millisecond))
	}
	time.Sleep(500 * time.Millisecond)

	// Retired: back to the versions before, with the slow calls on the
	// retired ones finishing.
	c.retire("1.3.0")
	c.retire("2.1.0")
	c.waitFor(2*time.Second, "both clients to route back", func() bool {
		return routeOf(v1.cl) == "1.2.0" && routeOf(v2.cl) == "2.0.0"
	})
	c.waitFor(2*time.Second, "both clients to be served by the old versions", func() bool {
		return v1.lastVersion() == "1.2.0" && v2.lastVersion() == "2.0.0"
	})
	c.waitFor(20*time.Second, "1.3.0 and 2.1.0 to be retired", func() bool {
		return c.versionState("1.3.0") == api.VersionRetired && c.versionState("2.1.0") == api.VersionRetired
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	for _, wg := range wgs {
		wg.Wait()
	}

	for _, m := range []struct {
		cr       *caller
		old, new string
	}{{v1, "1.2.0", "1.3.0"}, {v2, "2.0.0", "2.1.0"}, {slow1, "1.2.0", "1.3.0"}, {slow2, "2.0.0", "2.1.0"}} {
		served := m.cr.verify(t, c, nil)
		if m.cr == v1 || m.cr == v2 {
			if served[m.old] == 0 || served[m.new] == 0 {
				t.Errorf("client %s: served %v, want calls served by both %s and %s", m.cr.ver, served, m.old, m.new)
			}
		}
	}
}

// A client that requires greeter ~> 1.2 never reaches 1.1 or 2.x, even when
// the 2.x version is newer and admits it by its range, or when 1.1 is alone:
// then it gets the clear no-compatible-version error, without a call.
//
// The last stage needs the gateway to re-check the named container with the
// client's requirement (sent as Coexist-Client-Require): a gateway that
// re-checks with the client's version alone picks 2.0.0 and refuses the
// 1.2.0 container as stale, for ever.
func TestRequirementIsHonoured(t *testing.T) {
	c := startDev(t)
	c.declare("1.1.0", ">= 1.0, < 2.0")
	c.container("g110", "1.1.0")
	c.waitRunning("g110")

	const req = "~> 1.2"
	strict := c.newClient("1.3.0", map[string]string{"greeter": req}, nil)
	free := c.newClient("1.3.0", nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	expectNone := func(stage string, excluded ...string) {
		t.Helper()
		a := call(ctx, strict, "")
		if !errors.Is(a.err, ErrNoCompatibleVersion) {
			t.Fatalf("%s: call = status %d %q, error %v; want ErrNoCompatibleVersion", stage, a.status, a.servedBy, a.err)
		}
		msg := a.err.Error()
		for _, want := range append([]string{`client web@1.3.0 requiring "~> 1.2"`}, excluded...) {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: error %q does not say %q", stage, msg, want)
			}
		}
		if _, err := strict.Route("greeter"); !errors.Is(err, ErrNoCompatibleVersion) {
			t.Errorf("%s: Route = %v", stage, err)
		}
	}

	// 1.1.0 alone: the unconstrained client is served by it, the strict one
	// gets the error.
	if a := call(ctx, free, ""); a.err != nil || a.version != "1.1.0" {
		t.Fatalf("unconstrained client: %v %q", a.err, a.servedBy)
	}
	expectNone("1.1.0 alone", `1.1.0 (active, clients ">= 1.0, < 2.0", excluded by requirement)`)

	// 2.0.0, newer and admitting 1.x clients: the rule without the
	// requirement picks it; the strict client still has nothing.
	c.declare("2.0.0", ">= 1.0")
	c.container("g200", "2.0.0")
	c.waitRunning("g200")
	c.waitFor(2*time.Second, "the unconstrained client to route to 2.0.0", func() bool { return routeOf(free) == "2.0.0" })
	expectNone("1.1.0 and 2.0.0", "1.1.0 (active", "2.0.0 (active, clients \">= 1.0\", excluded by requirement)")

	// 1.2.0 comes up: the strict client is served by it, and only by it,
	// while the unconstrained one stays on 2.0.0.
	c.declare("1.2.0", ">= 1.0, < 2.0")
	c.container("g120", "1.2.0")
	c.waitRunning("g120")
	c.waitFor(2*time.Second, "the strict client to route to 1.2.0", func() bool { return routeOf(strict) == "1.2.0" })
	r, _ := strict.Route("greeter")
	t.Logf("strict client: %s, %s", r.Version, r.Reason)
	strictCaller, freeCaller := newCaller(strict, "1.3.0", req), newCaller(free, "1.3.0", "")
	stop := make(chan struct{})
	wg1 := strictCaller.run(stop, 2, 5*time.Millisecond)
	wg2 := freeCaller.run(stop, 1, 5*time.Millisecond)
	time.Sleep(time.Second)
	close(stop)
	wg1.Wait()
	wg2.Wait()
	if served := strictCaller.verify(t, c, nil); len(served) != 1 || served["1.2.0"] == 0 {
		t.Errorf("strict client served %v, want 1.2.0 only", served)
	}
	if served := freeCaller.verify(t, c, nil); len(served) != 1 || served["2.0.0"] == 0 {
		t.Errorf("unconstrained client served %v, want 2.0.0 only", served)
	}
}

// churnVersion is a greeter version the churn may declare, with its fixed
// clients range.
type churnVersion struct{ version, clients string }

// Eight SDK clients of mixed versions call in a loop while 200 random
// operations run against the registry: declare a version (or declare a
// retired one again), add a container, retire a version, crash a container.
// Every answer is checked against the routing rule, and every call must
// succeed: each client always has a compatible running version (baseline
// versions the churn never touches). The only excused failures are calls in
// flight on a container at the moment the test killed it.
func TestChurn(t *testing.T) {
	c := startDev(t)
	baseline := []churnVersion{{"1.0.0", ">= 1.0, < 2.0"}, {"1.2.0", ">= 1.0, < 2.0"}, {"2.1.0", ">= 2.0, < 3.0"}}
	pool := []churnVersion{
		{"1.1.0", ">= 1.0, < 2.0"}, {"1.3.0", ">= 1.0, < 2.0"}, {"1.4.0", ">= 1.3, < 2.0"},
		{"1.5.0", ">= 1.0, < 2.0"}, {"1.7.0", ">= 1.5, < 2.0"}, {"2.2.0", ">= 2.0, < 3.0"},
		{"2.3.0", ">= 2.2, < 3.0"}, {"2.4.0", ">= 1.6, < 3.0"}, {"2.5.0", ">= 2.0, < 3.0"},
	}
	for i, v := range baseline {
		c.declare(v.version, v.clients)
		c.container(fmt.Sprintf("base%d", i), v.version)
	}
	c.waitRunning("base0", "base1", "base2")

	var callers []*caller
	for _, v := range []string{"1.0.0", "1.3.0", "1.6.0", "1.9.0", "2.0.0", "2.2.0", "2.4.0", "2.9.0"} {
		callers = append(callers, newCaller(c.newClient(v, nil, nil), v, ""))
	}
	stop := make(chan struct{})
	var wgs []*sync.WaitGroup
	for _, cr := range callers {
		wgs = append(wgs, cr.run(stop, 1, 10*time.Millisecond))
	}
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
		}
	}()

	// The seed picks the operations (their timing still varies); set
	// COEXIST_CHURN_SEED to replay a sequence.
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("COEXIST_CHURN_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("COEXIST_CHURN_SEED %q: %v", s, err)
		}
		seed = n
	}
	t.Logf("churn seed %d (COEXIST_CHURN_SEED)", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))
	state := map[string]string{} // pool version -> active, draining or retired; absent: never declared
	containersOf := map[string][]string{}
	var crashMu sync.Mutex
	crashes := map[string][]time.Time{} // container -> when the test killed it
	ops := map[string]int{}
	next := 0
	for i := 0; i < 200; i++ {
		// The registry's view of versions, for the choice of operation.
		if s, _, err := c.api.Services().Info(context.Background(), "greeter", nil); err == nil {
			for _, v := range s.Versions {
				if _, ok := state[v.Version]; ok {
					state[v.Version] = v.State
				}
			}
		}
		var active []string
		for _, v := range pool {
			if state[v.version] == api.VersionActive {
				active = append(active, v.version)
			}
		}
		switch op := rnd.IntN(4); {
		case op == 0 || len(active) == 0:
			v := pool[rnd.IntN(len(pool))]
			c.declare(v.version, v.clients)
			state[v.version] = api.VersionActive
			ops["declare"]++
			if len(containersOf[v.version]) == 0 {
				id := fmt.Sprintf("c%d", next)
				next++
				c.container(id, v.version)
				containersOf[v.version] = append(containersOf[v.version], id)
			}
		case op == 1:
			v := active[rnd.IntN(len(active))]
			if len(containersOf[v]) >= 2 {
				continue
			}
			id := fmt.Sprintf("c%d", next)
			next++
			c.container(id, v)
			containersOf[v] = append(containersOf[v], id)
			ops["add container"]++
		case op == 2:
			v := active[rnd.IntN(len(active))]
			c.retire(v)
			state[v] = api.VersionDraining
			ops["retire"]++
		default:
			cs, _, err := c.api.Containers().List(context.Background(), "n1", nil)
			if err != nil {
				t.Fatal(err)
			}
			var victims []api.Container
			for _, ct := range cs {
				if !strings.HasPrefix(ct.ID, "base") && ct.Status != nil && ct.Status.State == api.ContainerRunning && ct.Status.PID > 0 {
					victims = append(victims, ct)
				}
			}
			if len(victims) == 0 {
				continue
			}
			v := victims[rnd.IntN(len(victims))]
			crashMu.Lock()
			crashes[v.ID] = append(crashes[v.ID], time.Now())
			crashMu.Unlock()
			_ = syscall.Kill(v.Status.PID, syscall.SIGKILL)
			ops["crash"]++
		}
		time.Sleep(time.Duration(40+rnd.IntN(60)) * time.Millisecond)
	}
	time.Sleep(time.Second)
	close(stop)
	stopped = true
	for _, wg := range wgs {
		wg.Wait()
	}
	t.Logf("operations: %v", ops)

	// A call cut off by a crash the test caused may fail: the gateway had
	// sent it to the container, which died with it (502, not retried: it
	// may have reached the service).
	var excused atomic.Int64
	excuse := func(a answer) bool {
		if a.status != http.StatusBadGateway && !(a.status == http.StatusOK && a.err != nil) {
			return false
		}
		var e api.ErrorResponse
		_ = json.Unmarshal([]byte(a.body), &e)
		crashMu.Lock()
		defer crashMu.Unlock()
		for id, times := range crashes {
			if !strings.Contains(e.Error, fmt.Sprintf("container %q", id)) && a.container != id {
				continue
			}
			for _, at := range times {
				if !at.Before(a.start.Add(-50*time.Millisecond)) && !at.After(a.end) {
					excused.Add(1)
					return true
				}
			}
		}
		return false
	}
	total := 0
	for _, cr := range callers {
		total += len(cr.all())
		cr.verify(t, c, excuse)
	}
	t.Logf("%d calls in all; %d cut off by a crash", total, excused.Load())
}

// With the registry in its own process, killing it leaves the clients
// routing from their cached tables: calls keep succeeding, the table's age
// grows past the threshold (and is logged), and when the registry is back
// the same watches resume, with no restart of the client, and follow a
// change made after.
func TestRegistryOutage(t *testing.T) {
	c := startApart(t)
	c.declare("1.2.0", ">= 1.0, < 2.0")
	c.declare("2.0.0", ">= 2.0, < 3.0")
	c.container("g120", "1.2.0")
	c.container("g200", "2.0.0")
	c.waitRunning("g120", "g200")

	var logs syncBuffer
	stale := func(cfg *Config) {
		cfg.StaleThreshold = time.Second
		cfg.Logger = testLogger(t, &logs).Named("web@" + cfg.Version)
	}
	v1 := newCaller(c.newClient("1.3.0", nil, stale), "1.3.0", "")
	v2 := newCaller(c.newClient("2.1.0", nil, stale), "2.1.0", "")
	stop := make(chan struct{})
	wg1 := v1.run(stop, 2, 10*time.Millisecond)
	wg2 := v2.run(stop, 2, 10*time.Millisecond)
	stopped := false
	defer func() {
		if !stopped {
			close(stop)
		}
	}()
	time.Sleep(300 * time.Millisecond)

	c.server.stop(syscall.SIGKILL, time.Second)
	down := time.Now()
	before := len(v1.all()) + len(v2.all())
	var last time.Duration
	for time.Since(down) < 3*time.Second {
		s := min(v1.cl.Staleness(), v2.cl.Staleness())
		if s+50*time.Millisecond < last {
			t.Errorf("staleness went down from %s to %s with the registry down", last, s)
		}
		last = s
		time.Sleep(100 * time.Millisecond)
	}
	if last < 2*time.Second {
		t.Errorf("staleness %s after 3s without a registry", last)
	}
	if n := len(v1.all()) + len(v2.all()) - before; n < 50 {
		t.Errorf("only %d calls made during the outage", n)
	}
	c.waitFor(2*time.Second, "the stale warning", func() bool { return strings.Contains(logs.String(), "route table is stale") })

	c.startServer()
	c.waitFor(30*time.Second, "the clients' watches to resume", func() bool {
		return v1.cl.Staleness() < time.Second && v2.cl.Staleness() < time.Second
	})
	t.Logf("watches resumed %s after the registry came back", time.Since(down.Add(3*time.Second)).Round(time.Millisecond))
	c.waitFor(5*time.Second, "the log of it", func() bool { return strings.Contains(logs.String(), "route table is current again") })

	// A change after the outage reaches the same clients.
	c.declare("1.3.0", ">= 1.0, < 2.0")
	c.container("g130", "1.3.0")
	c.waitRunning("g130")
	c.waitFor(2*time.Second, "client 1.3.0 to route to 1.3.0", func() bool { return routeOf(v1.cl) == "1.3.0" })
	c.waitFor(2*time.Second, "client 1.3.0 to be served by 1.3.0", func() bool { return v1.lastVersion() == "1.3.0" })
	close(stop)
	stopped = true
	wg1.Wait()
	wg2.Wait()
	v1.verify(t, c, nil)
	v2.verify(t, c, nil)
}
