package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
}

// TestHotAddLeavesOthersRunning adds a container beside one under steady
// load of hotAddRate calls/s: the other's pid and start time do not change,
// no call fails, and the load holds at least 80% of its rate (without the
// race detector, which slows the agent too much for a rate goal).
func TestHotAddLeavesOthersRunning(t *testing.T) { testHotAdd(t, "") }

const hotAddRate = 500

// TestHotAddStdEngine: the same, through a gateway whose engine is net/http
// and ReverseProxy for every call (--gateway-engine std).
func TestHotAddStdEngine(t *testing.T) { testHotAdd(t, "", "--gateway-engine", "std") }

func testHotAdd(t *testing.T, driver string, agentArgs ...string) {
	skipShort(t)
	f := newFleet(t)
	f.driver = driver
	a := f.startAgent("n1", agentArgs...)
	ranges := map[string]string{"1.0.0": ">= 1.0, < 2.0", "2.0.0": ">= 2.0, < 3.0"}
	var mu sync.Mutex
	f.declare("greeter", "1.0.0", ranges["1.0.0"])
	f.declare("greeter", "2.0.0", ranges["2.0.0"])
	f.greeter("g1", "n1", "1.0.0", nil)
	before := f.waitState("g1", api.ContainerRunning)
	if driver == "oci" {
		assertContainerized(t, before.Status.PID)
	}

	v1 := newCaller(a.gateway, "web", "1.3.0", ranges, &mu)
	stop := make(chan struct{})
	wg := v1.load(stop, hotAddRate, 25, 5*time.Second)
	waitFor(t, 10*time.Second, "calls to flow", func() bool { return v1.ok.Load() > 50 })
	// The rate is measured from here, across the hot-add.
	loadStart, callsBefore := time.Now(), v1.ok.Load()+v1.failed.Load()

	f.greeter("g2", "n1", "2.0.0", nil)
	f.waitState("g2", api.ContainerRunning)
	v2 := newCaller(a.gateway, "web", "2.1.0", ranges, &mu)
	for range 20 {
		if _, err := v2.call(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // keep the load on across the change
	close(stop)
	wg.Wait()
	rate := float64(v1.ok.Load()+v1.failed.Load()-callsBefore) / time.Since(loadStart).Seconds()
	t.Logf("load across the hot-add: %.0f calls/s (offered %d/s)", rate, hotAddRate)
	if rate < 0.8*hotAddRate && !raceEnabled {
		t.Errorf("the load made %.0f calls/s, want at least %d (80%% of %d)", rate, 8*hotAddRate/10, hotAddRate)
	}

	after := f.container("g1")
	if after.Status.PID != before.Status.PID || !after.Status.StartedAt.Equal(*before.Status.StartedAt) {
		t.Fatalf("g1 was restarted: pid %d -> %d, started %v -> %v", before.Status.PID, after.Status.PID, before.Status.StartedAt, after.Status.StartedAt)
	}
	v1.assertNoFailures(t)
	if v2.servedBy("2.0.0") != 20 {
		t.Fatalf("2.x client not served by 2.0.0: %v", v2.served)
	}
	if v1.servedBy("2.0.0") != 0 {
		t.Fatalf("1.x client reached 2.0.0")
	}
	// The std engine hands every connection to net/http; the fast one
	// answers these calls itself. Either hands over the call that reads
	// the metrics.
	handed := gatewayMetric(t, a.gateway, "coexist_gateway_connections_handed_over_total") - 1
	if std := slices.Contains(agentArgs, "std"); std != (handed > 0) {
		t.Fatalf("%v connections handed to net/http with agent flags %q", handed, agentArgs)
	}
}

// gatewayMetric reads the value of an unlabelled metric of the gateway at
// addr.
func gatewayMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/v1/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("gateway metrics: %d %v", resp.StatusCode, err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("gateway metrics have no %s", name)
	return 0
}

// TestRetireUnderLoad moves 1.x clients from 1.0.0 to a new 1.1.0 and
// retires 1.0.0 under 500 calls/s: no call fails, and a 2-second call in
// flight on 1.0.0 during the retire completes before its container stops.
func TestRetireUnderLoad(t *testing.T) { testRetireUnderLoad(t, "") }

func testRetireUnderLoad(t *testing.T, driver string) {
	skipShort(t)
	f := newFleet(t)
	f.driver = driver
	a := f.startAgent("n1")
	ranges := map[string]string{"1.0.0": ">= 1.0, < 2.0", "1.1.0": ">= 1.0, < 2.0"}
	var mu sync.Mutex
	f.declare("greeter", "1.0.0", ranges["1.0.0"])
	f.greeter("old", "n1", "1.0.0", nil)
	f.waitState("old", api.ContainerRunning)

	c := newCaller(a.gateway, "web", "1.3.0", ranges, &mu)
	stop := make(chan struct{})
	wg := c.load(stop, 500, 10, 10*time.Second)
	waitFor(t, 10*time.Second, "calls to flow", func() bool { return c.ok.Load() > 100 })

	// A long call lands on 1.0.0 before 1.1.0 exists.
	long := newCaller(a.gateway, "web", "1.3.0", ranges, &mu)
	longDone := make(chan error, 1)
	var longServed string
	go func() {
		var err error
		longServed, err = long.call(context.Background(), "?delay=2s")
		longDone <- err
	}()
	waitFor(t, 5*time.Second, "the long call to be in flight", func() bool {
		n := f.inflightOf("old")
		return n != "" && n != "0"
	})

	f.declare("greeter", "1.1.0", ranges["1.1.0"])
	f.greeter("new", "n1", "1.1.0", nil)
	f.waitState("new", api.ContainerRunning)
	waitFor(t, 10*time.Second, "calls to move to 1.1.0", func() bool { return c.servedBy("1.1.0") > 100 })
	f.retire("greeter", "1.0.0")
	// The long call keeps 1.0.0 draining until it completes.
	if err := <-longDone; err != nil {
		t.Fatalf("the long call failed: %v", err)
	}
	if !strings.HasPrefix(longServed, "greeter@1.0.0 old") {
		t.Fatalf("long call served by %q", longServed)
	}
	f.waitVersion("greeter", "1.0.0", api.VersionRetired)
	f.waitState("old", api.ContainerStopped)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	c.assertNoFailures(t)
	elapsed := c.ok.Load()
	t.Logf("%d calls at 500/s; %d served by 1.1.0", elapsed, c.servedBy("1.1.0"))
}

// inflightOf reads the in-flight count the gateway exposes for a container.
func (f *fleet) inflightOf(id string) string {
	for _, a := range f.agents {
		req, err := http.NewRequest(http.MethodGet, "http://"+a.gateway+"/v1/metrics", nil)
		if err != nil {
			continue
		}
		// The gateway's metrics need a token the registry knows.
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := httpClientNoKeepAlive.Do(req)
		if err != nil {
			continue
		}
		b := readAll(resp)
		for _, line := range strings.Split(b, "\n") {
			if strings.HasPrefix(line, "coexist_gateway_inflight{") && strings.Contains(line, `container="`+id+`"`) {
				fields := strings.Fields(line)
				return fields[len(fields)-1]
			}
		}
	}
	return ""
}

// TestAgentRestartReadoptsContainers kills the agent with SIGKILL under load
// and starts it again: the containers keep their pids, stay routable, and no
// call fails for clients that retry refused connections within their
// deadline.
func TestAgentRestartReadoptsContainers(t *testing.T) { testAgentRestart(t, "") }

func testAgentRestart(t *testing.T, driver string) {
	skipShort(t)
	f := newFleet(t)
	f.driver = driver
	a := f.startAgent("n1")
	ranges := map[string]string{"1.0.0": ">= 1.0, < 2.0", "2.0.0": ">= 2.0, < 3.0"}
	var mu sync.Mutex
	f.declare("greeter", "1.0.0", ranges["1.0.0"])
	f.declare("greeter", "2.0.0", ranges["2.0.0"])
	f.greeter("g1", "n1", "1.0.0", nil)
	f.greeter("g2", "n1", "2.0.0", nil)
	p1 := f.waitState("g1", api.ContainerRunning).Status.PID
	p2 := f.waitState("g2", api.ContainerRunning).Status.PID
	if driver == "oci" {
		assertContainerized(t, p1)
	}

	v1 := newCaller(a.gateway, "web", "1.0.0", ranges, &mu)
	v2 := newCaller(a.gateway, "web", "2.0.0", ranges, &mu)
	stop := make(chan struct{})
	wg1 := v1.load(stop, 100, 4, 15*time.Second)
	wg2 := v2.load(stop, 100, 4, 15*time.Second)
	waitFor(t, 10*time.Second, "calls to flow", func() bool { return v1.ok.Load() > 20 && v2.ok.Load() > 20 })

	// The gateway is in the agent's process: a call that is inside it at
	// the instant of SIGKILL has its connection reset, and a caller cannot
	// know whether it reached the service. Those calls (at most one per
	// worker) are counted apart; every call that starts after the kill must
	// succeed, retrying refused connections until the agent is back.
	failedBefore := v1.failed.Load() + v2.failed.Load()
	a.kill()
	time.Sleep(50 * time.Millisecond)
	atKill := v1.failed.Load() + v2.failed.Load() - failedBefore
	v1.failed.Store(0)
	v2.failed.Store(0)
	okBefore := v1.ok.Load()
	time.Sleep(450 * time.Millisecond) // calls are refused meanwhile, and retried
	f.startAgent("n1")
	waitFor(t, 15*time.Second, "calls to flow again", func() bool { return v1.ok.Load() > okBefore+50 })
	close(stop)
	wg1.Wait()
	wg2.Wait()

	if got := f.container("g1").Status.PID; got != p1 {
		t.Fatalf("g1 restarted: pid %d -> %d", p1, got)
	}
	if got := f.container("g2").Status.PID; got != p2 {
		t.Fatalf("g2 restarted: pid %d -> %d", p2, got)
	}
	if !strings.Contains(a.logs(), "re-adopted container") {
		t.Fatalf("the new agent did not re-adopt:\n%s", a.logs())
	}
	if failedBefore != 0 || atKill > 8 {
		t.Fatalf("%d calls failed before the kill, %d in flight at the kill (at most 8 workers)", failedBefore, atKill)
	}
	t.Logf("%d calls were inside the gateway at the kill", atKill)
	v1.assertNoFailures(t)
	v2.assertNoFailures(t)
}

// TestFailingHealthIsNeverRouted deploys a version that never passes its
// health check beside one that serves: it is reported failed with its own
// output and receives no call, while the old one keeps serving.
func TestFailingHealthIsNeverRouted(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	a := f.startAgent("n1", "--start-timeout", "3s")
	ranges := map[string]string{"1.0.0": ">= 1.0, < 2.0", "1.1.0": ">= 1.0, < 2.0"}
	var mu sync.Mutex
	f.declare("greeter", "1.0.0", ranges["1.0.0"])
	f.declare("greeter", "1.1.0", ranges["1.1.0"])
	f.greeter("good", "n1", "1.0.0", nil)
	f.waitState("good", api.ContainerRunning)

	c := newCaller(a.gateway, "web", "1.5.0", ranges, &mu)
	stop := make(chan struct{})
	wg := c.load(stop, 200, 4, 5*time.Second)
	f.greeter("bad", "n1", "1.1.0", map[string]string{"GREETER_FAIL_HEALTH": "1"})
	bad := f.waitState("bad", api.ContainerFailed)
	close(stop)
	wg.Wait()
	c.assertNoFailures(t)
	if n := c.servedBy("1.1.0"); n != 0 {
		t.Fatalf("%d calls reached the unhealthy version", n)
	}
	if !strings.Contains(bad.Status.Message, "health check") || !strings.Contains(bad.Status.Message, "listening") {
		t.Fatalf("failed message lacks the reason or the container's output: %q", bad.Status.Message)
	}
}

// TestCrashedContainerIsRestarted lets a container crash: it is restarted
// with backoff and the restart is reported.
func TestCrashedContainerIsRestarted(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	f.startAgent("n1")
	f.declare("greeter", "1.0.0", ">= 1.0")
	f.greeter("crashy", "n1", "1.0.0", map[string]string{"GREETER_CRASH_AFTER": "1s"})
	first := f.waitState("crashy", api.ContainerRunning).Status.PID
	waitFor(t, 30*time.Second, "a reported restart", func() bool {
		c := f.container("crashy")
		return c.Status != nil && c.Status.Restarts >= 1 && c.Status.State == api.ContainerRunning && c.Status.PID != first
	})
	c := f.container("crashy")
	if !strings.Contains(c.Status.Message, "restarted") {
		t.Fatalf("message = %q", c.Status.Message)
	}
}

// TestAgentBadUsageExits2: a flag that does not hold is bad usage, exit 2,
// with one line naming it, before anything starts.
func TestAgentBadUsageExits2(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--port-range", "5-2", "--data-dir", t.TempDir()}, `--port-range "5-2": want LOW-HIGH`},
		{[]string{"--port-range", "x", "--dev"}, `--port-range "x": want LOW-HIGH`},
		{[]string{"--node-id", "n1"}, "--data-dir is required"},
		{[]string{"--no-such-flag"}, "flag provided but not defined"},
		{[]string{"--gateway-engine", "nginx", "--dev"}, `--gateway-engine "nginx": want "fast" or "std"`},
	} {
		var stdout, stderr strings.Builder
		if code := runAgent(tt.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("coexist agent %q: exit %d, stderr %q; want exit 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
	}
}
