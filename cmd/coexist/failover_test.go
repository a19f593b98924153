package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client"
)

// TestAgentsFailOverAcrossServers runs three real servers (heartbeat TTL 5s)
// and two real agents, each with a greeter container, under steady calls of
// an SDK client. Agent A is given one follower's URL only, and must learn the
// other servers; agent B is given the leader's URL and another follower's,
// comma-separated; the SDK clients are given the leader's URL only. Then, with
// a quorum kept at every moment: A's server is killed (SIGKILL), later
// restarted; then the leader (B's and the SDK's first server) is killed.
// Throughout, both nodes stay ready, no call fails, and no container is
// restarted.
func TestAgentsFailOverAcrossServers(t *testing.T) {
	skipShort(t)
	const ttl = 5 * time.Second
	procs := startCluster(t, 3, "--heartbeat-ttl", ttl.String())
	leader := leaderOf(t, procs)
	var followers []*serverProc
	for _, p := range procs {
		if p != leader {
			followers = append(followers, p)
		}
	}
	var urls []string
	for _, p := range procs {
		urls = append(urls, p.url())
	}
	testAPI, err := api.NewClient(&api.Config{Address: strings.Join(urls, ","), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	f := newFleetOn(t, leader, testAPI)
	f.addAgent("n-a", followers[0].url())
	f.addAgent("n-b", leader.url()+","+followers[1].url())
	f.startAgent("n-a")
	f.startAgent("n-b")

	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	f.greeter("g-a", "n-a", "1.0.0", nil)
	f.greeter("g-b", "n-b", "1.0.0", nil)
	pids := map[string]int{
		"g-a": f.waitState("g-a", api.ContainerRunning).Status.PID,
		"g-b": f.waitState("g-b", api.ContainerRunning).Status.PID,
	}

	// Both nodes must stay ready: poll the nodes table from any server that
	// knows the leader.
	stop := make(chan struct{})
	var (
		notReadyMu sync.Mutex
		notReady   []string
		polls      atomic.Int64
		wg         sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			nodes, meta, err := testAPI.Nodes().List(ctx, &api.QueryOptions{AllowStale: true})
			cancel()
			if err != nil || !meta.KnownLeader {
				continue
			}
			polls.Add(1)
			for _, n := range nodes {
				if n.Status != api.NodeReady {
					notReadyMu.Lock()
					notReady = append(notReady, fmt.Sprintf("%s %s at %s", n.ID, n.Status, time.Now().Format(time.StampMilli)))
					notReadyMu.Unlock()
				}
			}
		}
	}()

	// One SDK client per node, each preferring its node's container, so
	// that both nodes take calls.
	var sdks []*client.Client
	for _, n := range []string{"n-a", "n-b"} {
		sdk, err := client.New(context.Background(), client.Config{Name: "web", Version: "1.2.0", Node: n, Registry: leader.url(), Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		defer sdk.Close()
		sdks = append(sdks, sdk)
	}
	var ok, failed atomic.Int64
	var errsMu sync.Mutex
	var errs []string
	served := map[string]*atomic.Int64{"g-a": {}, "g-b": {}}
	for w := range 4 {
		hc := &http.Client{Transport: sdks[w%2].Transport()}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(40 * time.Millisecond) // 4 × 25 calls/s
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := sdkCall(ctx, hc, served)
				cancel()
				if err == nil {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				errsMu.Lock()
				if len(errs) < 10 {
					errs = append(errs, err.Error())
				}
				errsMu.Unlock()
			}
		}()
	}
	stopped := false
	finish := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	defer finish()
	waitFor(t, 10*time.Second, "calls to flow to both nodes", func() bool {
		if failed.Load() > 0 {
			errsMu.Lock()
			defer errsMu.Unlock()
			t.Fatalf("calls failed before any kill: %v", errs)
		}
		return served["g-a"].Load() > 20 && served["g-b"].Load() > 20
	})

	// watch keeps the load on for longer than a TTL and a heartbeat after a
	// kill, and checks that calls went on meanwhile.
	watch := func(what string) {
		t.Helper()
		before := ok.Load()
		time.Sleep(ttl + 3*time.Second)
		if ok.Load()-before < 100 {
			t.Fatalf("after %s: only %d calls succeeded in %s", what, ok.Load()-before, ttl+3*time.Second)
		}
	}

	// 1. Agent A's only server, a follower, dies.
	a := followers[0]
	a.kill()
	t.Logf("killed %s, the only server agent n-a was given", a.id)
	watch("killing " + a.id)

	// 2. It comes back on its data dir and catches up.
	a.start(t, "--heartbeat-ttl", ttl.String())
	waitFor(t, 30*time.Second, a.id+" to rejoin", func() bool {
		l, _, err := a.client(t).Status().Leader(context.Background(), nil)
		if err != nil || l.ID != leader.id {
			return false
		}
		nodes, meta, err := a.client(t).Nodes().List(context.Background(), &api.QueryOptions{AllowStale: true})
		return err == nil && meta.KnownLeader && len(nodes) == 2
	})

	// 3. The leader dies: agent B's first server and the SDK's only one.
	if now := leaderOf(t, procs); now != leader {
		// A loaded machine may hold an election of its own: kill the
		// leader there is.
		t.Logf("leadership moved from %s to %s before the leader kill", leader.id, now.id)
		leader = now
	}
	leader.kill()
	t.Logf("killed the leader %s", leader.id)
	watch("killing the leader " + leader.id)
	next := leaderOf(t, procs)
	t.Logf("new leader %s", next.id)

	staleness := max(sdks[0].Staleness(), sdks[1].Staleness())
	finish()
	notReadyMu.Lock()
	defer notReadyMu.Unlock()
	errsMu.Lock()
	defer errsMu.Unlock()
	t.Logf("%d calls ok (g-a %d, g-b %d), %d failed; %d polls of the nodes table; SDK table staleness %s",
		ok.Load(), served["g-a"].Load(), served["g-b"].Load(), failed.Load(), polls.Load(), staleness)
	if len(notReady) > 0 {
		t.Errorf("a node was not ready: %v", notReady)
	}
	if failed.Load() > 0 {
		t.Errorf("%d calls failed: %v", failed.Load(), errs)
	}
	if polls.Load() < 50 {
		t.Errorf("only %d answers from the nodes table: the check saw too little", polls.Load())
	}
	for id, pid := range pids {
		c, _, err := testAPI.Containers().Info(context.Background(), id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Status == nil || c.Status.PID != pid || c.Status.State != api.ContainerRunning {
			t.Errorf("%s restarted or not running: pid %d, status %+v", id, pid, c.Status)
		}
	}
	// The SDK clients were given the killed leader only: their tables are
	// fresh because they learned the other servers.
	if staleness > 3*time.Second {
		t.Errorf("an SDK client's route table is %s old after the leader died", staleness)
	}
}

// sdkCall makes one call to greeter through the SDK and counts the container
// that served it.
func sdkCall(ctx context.Context, hc *http.Client, served map[string]*atomic.Int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://greeter/hello", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	sb, err := api.ParseServedBy(resp.Header.Get(api.HeaderServedBy))
	if err != nil {
		return err
	}
	if c := served[sb.Container]; c != nil {
		c.Add(1)
		return nil
	}
	return fmt.Errorf("served by %q", sb)
}
