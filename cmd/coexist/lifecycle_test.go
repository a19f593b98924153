package main

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// raftIndex writes a no-op (greeter@1.0.0 declared again with the same range)
// and returns the Raft index it was applied at: two probes one apart mean
// nothing else was written in between.
func (f *fleet) raftIndex() uint64 {
	f.t.Helper()
	_, wm, err := f.api.Services().Declare(context.Background(), "greeter", "1.0.0", api.VersionRequest{Clients: ">= 1.0, < 2.0"}, nil)
	if err != nil {
		f.t.Fatalf("probe write: %v", err)
	}
	return wm.LastIndex
}

// assertQuiet checks that nothing is written to Raft for d.
func (f *fleet) assertQuiet(d time.Duration) {
	f.t.Helper()
	before := f.raftIndex()
	time.Sleep(d)
	if after := f.raftIndex(); after != before+1 {
		f.t.Fatalf("%d Raft writes in %s while every container sat still (indexes %d -> %d)", after-before-1, d, before, after)
	}
}

// TestRetiredAndStillContainersWriteNothing: a container declared on a
// retired version is refused with a message that names the field and the way
// back. A container that exits at once, one that never passes its health
// check, and one whose every version retired while its agent was down each
// reach their state, reported once, and then nothing is written to Raft: no
// report loop.
func TestRetiredAndStillContainersWriteNothing(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	a := f.startAgent("n1", "--start-timeout", "2s")
	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	f.declare("greeter", "0.9.0", ">= 0.9, < 1.0")
	f.retire("greeter", "0.9.0")
	f.waitVersion("greeter", "0.9.0", api.VersionRetired)

	req := api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "greeter", Version: "0.9.0"}},
		Config: api.DriverConfig{Command: greeterPath(t), Args: []string{"--version", "0.9.0"}}}
	_, _, err := f.api.Containers().Declare(context.Background(), "on-retired", req, nil)
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest || se.Body != "services[0].version: greeter 0.9.0 is retired; declare it again to roll back" {
		t.Fatalf("container on a retired version: %v", err)
	}

	// Every version of "orphan" retires while its agent is down: the agent
	// that comes back finds a container it never ran and must not run.
	a.kill()
	f.declare("greeter", "0.8.0", ">= 0.8, < 0.9")
	f.greeter("orphan", "n1", "0.8.0", nil)
	f.retire("greeter", "0.8.0")
	f.waitVersion("greeter", "0.8.0", api.VersionRetired)
	f.startAgent("n1", "--start-timeout", "2s")

	exits := api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}},
		Config:  api.DriverConfig{Command: "/bin/sh", Args: []string{"-c", "exit 3"}},
		Restart: &api.RestartPolicy{Attempts: 1, Delay: api.Duration(100 * time.Millisecond)}}
	if _, _, err := f.api.Containers().Declare(context.Background(), "exits", exits, nil); err != nil {
		t.Fatal(err)
	}
	f.greeter("unhealthy", "n1", "1.0.0", map[string]string{"GREETER_FAIL_HEALTH": "1"})

	f.waitState("orphan", api.ContainerStopped)
	f.waitState("exits", api.ContainerFailed)
	f.waitState("unhealthy", api.ContainerFailed)
	time.Sleep(500 * time.Millisecond) // the last reports land
	f.assertQuiet(3 * time.Second)
	if got := f.container("exits").Status; got.Restarts != 1 {
		t.Fatalf("exits: %d restarts, want 1 (restart.attempts)", got.Restarts)
	}
	if !strings.Contains(a.logs(), "action=fail container=exits") {
		t.Fatalf("the agent never gave up on the container that exits:\n%s", a.logs())
	}
}

// TestCrashAfterHealthyUsesItsAttemptsUp: a container that becomes healthy
// and then crashes is restarted restart.attempts times with growing delays,
// then failed for good; afterwards its agent writes nothing.
func TestCrashAfterHealthyUsesItsAttemptsUp(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	a := f.startAgent("n1")
	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	req := api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}},
		Config: api.DriverConfig{Command: greeterPath(t), Args: []string{"--version", "1.0.0"},
			Env: map[string]string{"GREETER_CRASH_AFTER": "500ms"}},
		Health:  &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(100 * time.Millisecond)},
		Restart: &api.RestartPolicy{Attempts: 3, Interval: api.Duration(10 * time.Minute), Delay: api.Duration(400 * time.Millisecond), MaxDelay: api.Duration(5 * time.Second)}}
	if _, _, err := f.api.Containers().Declare(context.Background(), "crashy", req, nil); err != nil {
		t.Fatal(err)
	}

	// Every start time the registry sees, and whether each run became
	// healthy.
	var starts []time.Time
	healthy := map[time.Time]bool{}
	var last *api.ContainerStatus
	waitFor(t, 60*time.Second, "crashy to be failed", func() bool {
		c, _, err := f.api.Containers().Info(context.Background(), "crashy", nil)
		if err != nil || c.Status == nil {
			return false
		}
		last = c.Status
		if st := c.Status.StartedAt; st != nil && c.Status.PID != 0 {
			if len(starts) == 0 || !starts[len(starts)-1].Equal(*st) {
				starts = append(starts, *st)
			}
			if c.Status.State == api.ContainerRunning {
				healthy[*st] = true
			}
		}
		time.Sleep(10 * time.Millisecond)
		return c.Status.State == api.ContainerFailed
	})
	if last.Restarts != 3 || len(starts) != 4 {
		t.Fatalf("failed after %d restarts with %d runs seen (%v); want 3 restarts, 4 runs", last.Restarts, len(starts), starts)
	}
	for _, st := range starts {
		if !healthy[st] {
			t.Fatalf("the run started at %v was never seen healthy: the test needs crashes after a passing check", st)
		}
	}
	// Each run lives ~500ms; the delays after it are 400ms, 800ms, 1.6s.
	var gaps []time.Duration
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, starts[i].Sub(starts[i-1]))
	}
	for i := 1; i < len(gaps); i++ {
		if gaps[i]-gaps[i-1] < 200*time.Millisecond {
			t.Fatalf("delays between runs do not grow: %v", gaps)
		}
	}
	t.Logf("runs %v apart, then failed: %q", gaps, last.Message)
	if !strings.Contains(last.Message, "3 restart attempts within 10m0s used up") {
		t.Fatalf("failed message = %q", last.Message)
	}
	time.Sleep(300 * time.Millisecond)
	f.assertQuiet(2 * time.Second)
	if n := strings.Count(a.logs(), "action=start container=crashy"); n != 4 {
		t.Fatalf("%d starts in the agent's log, want 4", n)
	}
}

// TestPurgeOfALiveNode: DELETE /v1/nodes/{id} of a ready node is refused
// with 409; with ?force its containers drain before they stop (a long call
// in flight completes, and the container is not stopped while it runs), and
// the agent registers its node again.
func TestPurgeOfALiveNode(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	a := f.startAgent("n1")
	ranges := map[string]string{"1.0.0": ">= 1.0, < 2.0"}
	var mu sync.Mutex
	f.declare("greeter", "1.0.0", ranges["1.0.0"])
	f.greeter("g1", "n1", "1.0.0", nil)
	pid := f.waitState("g1", api.ContainerRunning).Status.PID

	_, err := f.api.Nodes().Delete(context.Background(), "n1", nil)
	if !api.IsConflict(err) || !strings.Contains(err.Error(), `node "n1" is ready`) || !strings.Contains(err.Error(), "?force=true") {
		t.Fatalf("purge of a ready node: %v", err)
	}
	if c := f.container("g1"); c.Status.PID != pid || c.Status.State != api.ContainerRunning {
		t.Fatalf("a refused purge touched g1: %+v", c.Status)
	}

	long := newCaller(a.gateway, "web", "1.3.0", ranges, &mu)
	done := make(chan error, 1)
	go func() {
		_, err := long.call(context.Background(), "?delay=3s")
		done <- err
	}()
	waitFor(t, 5*time.Second, "the long call to be in flight", func() bool {
		n := f.inflightOf("g1")
		return n != "" && n != "0"
	})
	if _, err := f.api.Nodes().Delete(context.Background(), "n1", &api.WriteOptions{Force: true}); err != nil {
		t.Fatalf("forced purge: %v", err)
	}
	waitFor(t, 5*time.Second, "the agent to drain g1", func() bool {
		return strings.Contains(a.logs(), "action=drain container=g1")
	})
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(a.logs(), "action=stop container=g1") {
		t.Fatalf("g1 stopped with a call in flight:\n%s", a.logs())
	}
	if err := <-done; err != nil {
		t.Fatalf("the call in flight during the purge failed: %v", err)
	}
	waitFor(t, 10*time.Second, "g1 to stop once drained", func() bool {
		return strings.Contains(a.logs(), `action=stop container=g1 reason=drained`)
	})
	waitFor(t, 10*time.Second, "the agent to register its node again", func() bool {
		n, _, err := f.api.Nodes().Info(context.Background(), "n1", nil)
		return err == nil && n.Status == api.NodeReady
	})
}
