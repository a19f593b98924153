package driver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func syscallKill(pid int) error { return unix.Kill(pid, unix.SIGKILL) }

// TestRecoverAfterDriverDiscarded simulates the death of the agent inside the
// test process: the first driver is dropped, a second one on the same data
// dir loads the handles and re-adopts the process, which kept serving.
func TestRecoverAfterDriverDiscarded(t *testing.T) {
	t.Parallel()
	for _, watch := range []string{"pidfd", "proc"} {
		t.Run(watch, func(t *testing.T) {
			t.Parallel()
			e1 := newTestExec(t, nil)
			h := start(t, e1, selfSpec(t, "survivor", "serve", nil))
			waitServing(t, h)
			_ = e1.Close() // the agent "dies"; its container must not

			e2, err := NewExec(e1.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e2.Close()
			e2.noPidfd = watch == "proc"
			hs, err := e2.LoadHandles()
			if err != nil || len(hs) != 1 || *hs[0] != *h {
				t.Fatalf("LoadHandles = %v, %v; want %+v", hs, err, h)
			}
			if err := e2.Recover(hs[0]); err != nil {
				t.Fatalf("Recover: %v", err)
			}
			if err := e2.Recover(hs[0]); err != nil {
				t.Fatalf("second Recover of the same handle: %v", err)
			}
			st, err := e2.Inspect(h.ID)
			if err != nil || st.State != StateRunning || st.PID != h.PID || !st.Recovered {
				t.Fatalf("Inspect = %+v, %v", st, err)
			}
			if body, err := get(h.Endpoint, "/"); err != nil || body != fmt.Sprintf("ok pid=%d", h.PID) {
				t.Fatalf("GET / = %q, %v; want the same process still serving", body, err)
			}
			// The port stays held: a new container gets another one.
			h2 := start(t, e2, selfSpec(t, "newcomer", "serve", nil))
			if h2.Port == h.Port {
				t.Fatalf("newcomer got the re-adopted container's port %d", h.Port)
			}

			w1, _ := e2.Wait(context.Background(), h.ID)
			w2, _ := e2.Wait(context.Background(), h.ID)
			if _, err := get(h.Endpoint, "/exit?code=5"); err != nil {
				t.Fatal(err)
			}
			for _, w := range []<-chan ExitResult{w1, w2} {
				if r := receive(t, w); !isUnknownExit(r) {
					t.Fatalf("exit of a re-adopted process = %+v, want code -1 and ErrExitUnknown", r)
				}
			}
			if st, _ := e2.Inspect(h.ID); st.State != StateExited {
				t.Fatalf("Inspect after exit = %+v", st)
			}
			if err := e2.Recover(hs[0]); !errors.Is(err, ErrNotRunning) {
				t.Fatalf("Recover of an exited process = %v, want ErrNotRunning", err)
			}
		})
	}
}

func TestStopRecovered(t *testing.T) {
	t.Parallel()
	for _, watch := range []string{"pidfd", "proc"} {
		t.Run(watch, func(t *testing.T) {
			t.Parallel()
			e1 := newTestExec(t, nil)
			h := start(t, e1, selfSpec(t, "adoptee", "serve", nil))
			waitServing(t, h)
			_ = e1.Close()

			e2, err := NewExec(e1.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer e2.Close()
			e2.noPidfd = watch == "proc"
			if err := e2.Recover(h); err != nil {
				t.Fatal(err)
			}
			if err := e2.Stop(context.Background(), h.ID, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			waitOutput(t, h.Stdout, "got SIGTERM") // SIGTERM reached it through its group
			eventually(t, 10*time.Second, "process to be gone", func() bool { return dead(h.PID) })
			if err := e2.Stop(context.Background(), h.ID, time.Second); err != nil {
				t.Fatalf("second Stop: %v", err)
			}
		})
	}
}

// TestRecoverRefusesReusedPID: a pid alone never identifies the container.
func TestRecoverRefusesReusedPID(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	h := start(t, e, selfSpec(t, "real", "serve", nil))
	waitServing(t, h)

	self, err := readProcStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	e2 := newTestExec(t, nil)
	for name, bad := range map[string]Handle{
		// The pid is alive, but it is another process than the one recorded.
		"start time differs": {ID: "real", PID: h.PID, StartTime: h.StartTime + 1, Port: h.Port},
		"pid now the agent":  {ID: "imposter", PID: os.Getpid(), StartTime: self.StartTime + 7},
		"pid gone":           {ID: "gone", PID: exitedPID(t), StartTime: 12345},
	} {
		if err := e2.Recover(&bad); !errors.Is(err, ErrNotRunning) {
			t.Errorf("%s: Recover = %v, want ErrNotRunning", name, err)
		}
		if _, err := e2.Inspect(bad.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: a refused handle is tracked: %v", name, err)
		}
	}
	// On the driver that runs it: the same handle is fine, another is not.
	if err := e.Recover(h); err != nil {
		t.Fatalf("Recover of its own running handle = %v", err)
	}
	other := *h
	other.PID = os.Getpid()
	other.StartTime = self.StartTime
	if err := e.Recover(&other); !errors.Is(err, ErrRunning) {
		t.Fatalf("Recover of another process under a running id = %v, want ErrRunning", err)
	}
	for _, bad := range []*Handle{nil, {ID: "x", PID: 0, StartTime: 1}, {ID: "x/y", PID: 10, StartTime: 1}} {
		if err := e2.Recover(bad); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("Recover(%+v) = %v, want ErrInvalidSpec", bad, err)
		}
	}
}

// exitedPID returns the pid of a process that has exited and been reaped.
func exitedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run true: %v", err)
	}
	return cmd.Process.Pid
}

// TestChildOutlivesAgentProcess is the real thing: an agent process (the
// test binary in "agent" mode) starts a container and exits. The container
// keeps running, re-parented away from the agent, and a new driver re-adopts
// it, stops it and sees it go.
func TestChildOutlivesAgentProcess(t *testing.T) {
	t.Parallel()
	min, max := portWindow(t, 20)
	dir := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(self)
	agent.Env = append(os.Environ(),
		"DRIVER_TEST_CHILD=agent",
		"DRIVER_TEST_DATADIR="+dir,
		fmt.Sprintf("DRIVER_TEST_PORTS=%d-%d", min, max))
	var stdout, stderr bytes.Buffer
	agent.Stdout, agent.Stderr = &stdout, &stderr
	if err := agent.Run(); err != nil {
		t.Fatalf("agent: %v\n%s", err, stderr.String())
	}
	var h Handle
	if err := json.Unmarshal(stdout.Bytes(), &h); err != nil {
		t.Fatalf("agent output %q: %v", stdout.String(), err)
	}
	killAtCleanup(t, &h)

	// The agent is dead; its container is not.
	body := waitServing(t, &h)
	if body != fmt.Sprintf("ok pid=%d", h.PID) {
		t.Fatalf("GET / = %q", body)
	}

	e, err := NewExec(ExecConfig{DataDir: dir, PortMin: min, PortMax: max, LogCheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	hs, err := e.LoadHandles()
	if err != nil || len(hs) != 1 || *hs[0] != h {
		t.Fatalf("LoadHandles = %v, %v", hs, err)
	}
	if err := e.Recover(hs[0]); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	w, _ := e.Wait(context.Background(), h.ID)
	if err := e.Stop(context.Background(), h.ID, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if r := receive(t, w); !isUnknownExit(r) {
		t.Fatalf("exit = %+v", r)
	}
	waitOutput(t, h.Stdout, "got SIGTERM")
	eventually(t, 10*time.Second, "orphan to be gone", func() bool { return dead(h.PID) })
}
