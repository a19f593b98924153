package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestStartStopWithSIGTERM(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	h := start(t, e, selfSpec(t, "web-1", "serve", nil))

	if h.Endpoint != "127.0.0.1:"+strconv.Itoa(h.Port) || h.PID <= 0 || h.StartTime == 0 {
		t.Fatalf("handle = %+v", h)
	}
	if body := waitServing(t, h); body != fmt.Sprintf("ok pid=%d", h.PID) {
		t.Fatalf("GET / = %q, want the pid of the handle", body)
	}
	st, err := e.Inspect(h.ID)
	if err != nil || st.State != StateRunning || st.PID != h.PID || st.Recovered {
		t.Fatalf("Inspect = %+v, %v; want running, pid %d", st, err, h.PID)
	}

	began := time.Now()
	if err := e.Stop(context.Background(), h.ID, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("Stop took %s: SIGTERM was not honoured", d)
	}
	ch, err := e.Wait(context.Background(), h.ID)
	if err != nil {
		t.Fatal(err)
	}
	// After the exit the channel comes back filled.
	select {
	case r := <-ch:
		if !r.Successful() {
			t.Fatalf("exit = %+v, want 0 (the child exits 0 on SIGTERM)", r)
		}
	default:
		t.Fatal("Wait after exit: channel not filled")
	}
	waitOutput(t, h.Stdout, "got SIGTERM")
	if st, _ := e.Inspect(h.ID); st.State != StateExited || st.Exit == nil || st.Exit.ExitCode != 0 {
		t.Fatalf("Inspect after Stop = %+v", st)
	}
	// Idempotent.
	if err := e.Stop(context.Background(), h.ID, time.Second); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if !dead(h.PID) {
		t.Fatalf("pid %d still alive", h.PID)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	t.Parallel()
	// A file, which the test may read while the driver writes.
	logFile, err := os.Create(filepath.Join(t.TempDir(), "driver.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	e := newTestExec(t, func(c *ExecConfig) {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "driver", Output: logFile, Level: hclog.Info})
	})
	h := start(t, e, selfSpec(t, "stubborn", "serve", map[string]string{"DRIVER_TEST_IGNORE_TERM": "1"}))
	waitOutput(t, h.Stdout, "ready") // SIGTERM is ignored from here on

	const grace = 300 * time.Millisecond
	began := time.Now()
	if err := e.Stop(context.Background(), h.ID, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if d := time.Since(began); d < grace {
		t.Fatalf("Stop returned after %s, before the grace of %s", d, grace)
	}
	ch, _ := e.Wait(context.Background(), h.ID)
	r := receive(t, ch)
	if r.Signal != 9 || r.ExitCode != 137 {
		t.Fatalf("exit = %+v, want SIGKILL (9, code 137)", r)
	}
	// The warning reaches the configured logger.
	if got, _ := os.ReadFile(logFile.Name()); !strings.Contains(string(got), "[WARN]  driver: container ignored SIGTERM; killing: id=stubborn") {
		t.Fatalf("log lacks the warning:\n%s", got)
	}
}

func TestStopWithoutGraceUsesKillTimeout(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, func(c *ExecConfig) { c.KillTimeout = 200 * time.Millisecond })
	h := start(t, e, selfSpec(t, "stubborn", "serve", map[string]string{"DRIVER_TEST_IGNORE_TERM": "1"}))
	waitOutput(t, h.Stdout, "ready")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Stop(ctx, h.ID, 0); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	st, _ := e.Inspect(h.ID)
	if st.Exit == nil || st.Exit.Signal != 9 {
		t.Fatalf("Inspect = %+v, want killed by SIGKILL after the kill timeout", st)
	}
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	spec := selfSpec(t, "env-1", "serve", map[string]string{"GREETING": "hi", "PORT": "1"})
	h := start(t, e, spec)
	waitServing(t, h)
	body, err := get(h.Endpoint, "/env")
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(h.Port)
	want := map[string]string{
		"PORT":                 port, // the driver's PORT wins over the spec's
		"COEXIST_PORT":         port,
		"COEXIST_CONTAINER_ID": "env-1",
		"COEXIST_NODE_ID":      "node-1",
		"COEXIST_SERVICES":     "orders@1.4.2,payments@1.1.0",
		"GREETING":             "hi",
		"DRIVER_TEST_CHILD":    "serve",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	// Nothing else of the agent's environment leaks in.
	allowed := slices.Collect(maps.Keys(want))
	allowed = append(allowed, "PATH", "HOME")
	for k := range env {
		if !slices.Contains(allowed, k) {
			t.Errorf("unexpected env %s=%q in the container", k, env[k])
		}
	}
	if env["PATH"] == "" {
		t.Error("PATH not set")
	}
}

func TestStopKillsProcessGroup(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"stop", "leader-exits"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			e := newTestExec(t, nil)
			h := start(t, e, selfSpec(t, "group", "serve", map[string]string{"DRIVER_TEST_GRANDCHILD": "1"}))
			out := waitOutput(t, h.Stdout, "ready")
			var gc int
			for _, line := range strings.Split(out, "\n") {
				if n, ok := strings.CutPrefix(line, "grandchild "); ok {
					gc, _ = strconv.Atoi(n)
				}
			}
			if gc <= 0 || dead(gc) {
				t.Fatalf("no live grandchild in output %q", out)
			}
			t.Cleanup(func() { _ = syscallKill(gc) })
			if st, err := readProcStat(gc); err != nil || st.PGID != h.PID {
				t.Fatalf("grandchild pgid = %+v, %v; want the container's group %d", st, err, h.PID)
			}

			switch how {
			case "stop":
				if err := e.Stop(context.Background(), h.ID, 5*time.Second); err != nil {
					t.Fatal(err)
				}
			case "leader-exits":
				// The container's main process exits by itself: what is
				// left of its group goes with it.
				waitServing(t, h)
				_, _ = get(h.Endpoint, "/exit?code=0")
				ch, _ := e.Wait(context.Background(), h.ID)
				receive(t, ch)
			}
			eventually(t, 10*time.Second, "grandchild to die", func() bool { return dead(gc) })
		})
	}
}

func TestWaitFanOut(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	h := start(t, e, selfSpec(t, "fan", "serve", nil))
	waitServing(t, h)

	var chans []<-chan ExitResult
	for range 5 {
		ch, err := e.Wait(context.Background(), h.ID)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	// A waiter that gives up gets a closed channel, and takes nothing from
	// the others.
	ctx, cancel := context.WithCancel(context.Background())
	gaveUp, _ := e.Wait(ctx, h.ID)
	cancel()
	select {
	case r, ok := <-gaveUp:
		if ok {
			t.Fatalf("cancelled Wait delivered %+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelled Wait's channel not closed")
	}

	if _, err := get(h.Endpoint, "/exit?code=7"); err != nil {
		t.Fatal(err)
	}
	for i, ch := range chans {
		if r := receive(t, ch); r.ExitCode != 7 || r.Signal != 0 || r.Err != nil {
			t.Fatalf("waiter %d: %+v, want exit code 7", i, r)
		}
		if _, ok := <-ch; ok {
			t.Fatalf("waiter %d: channel not closed after the result", i)
		}
	}
	late, _ := e.Wait(context.Background(), h.ID)
	if r := receive(t, late); r.ExitCode != 7 {
		t.Fatalf("late Wait = %+v", r)
	}
	if _, err := e.Wait(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Wait(unknown) = %v, want ErrNotFound", err)
	}
}

func TestExitCodeAndRestartOfSameID(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	spec := selfSpec(t, "crashy", "exit", map[string]string{"DRIVER_TEST_CODE": "3", "DRIVER_TEST_LINES": "1"})
	h1 := start(t, e, spec)
	ch, _ := e.Wait(context.Background(), h1.ID)
	if r := receive(t, ch); r.ExitCode != 3 || r.Successful() {
		t.Fatalf("exit = %+v, want code 3", r)
	}
	// An exited container's id can be started again (the agent restarts it).
	spec = selfSpec(t, "crashy", "serve", nil)
	h2 := start(t, e, spec)
	if h2.PID == h1.PID && h2.StartTime == h1.StartTime {
		t.Fatal("restart reused the old process")
	}
	waitServing(t, h2)
	if _, err := e.Start(context.Background(), spec); !errors.Is(err, ErrRunning) {
		t.Fatalf("Start of a running id = %v, want ErrRunning", err)
	}
	if err := e.Stop(context.Background(), h2.ID, time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestStartInvalid(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	self, _ := os.Executable()
	for name, spec := range map[string]Spec{
		"empty id":        {Command: self},
		"slash in id":     {ID: "a/b", Command: self},
		"dot-dot id":      {ID: "..", Command: self},
		"no command":      {ID: "a"},
		"unknown command": {ID: "a", Command: "coexist-no-such-command"},
		"directory":       {ID: "a", Command: t.TempDir()},
		"bad env":         {ID: "a", Command: self, Env: map[string]string{"A=B": "c"}},
	} {
		if _, err := e.Start(context.Background(), spec); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: Start = %v, want ErrInvalidSpec", name, err)
		}
	}
	// A command found in PATH.
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh in PATH")
	}
	h := start(t, e, Spec{ID: "sh", Command: "sh", Args: []string{"-c", "echo from-sh"}})
	waitOutput(t, h.Stdout, "from-sh")
}

func TestNewExecValidates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, cfg := range map[string]ExecConfig{
		"no data dir":    {},
		"ports reversed": {DataDir: dir, PortMin: 22000, PortMax: 21000},
		"port too high":  {DataDir: dir, PortMin: 1, PortMax: 70000},
		"log cap small":  {DataDir: dir, LogMaxBytes: 100},
		"negative kill":  {DataDir: dir, KillTimeout: -time.Second},
	} {
		if _, err := NewExec(cfg); err == nil {
			t.Errorf("%s: NewExec accepted %+v", name, cfg)
		}
	}
	e, err := NewExec(ExecConfig{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if e.cfg.PortMin != 21000 || e.cfg.PortMax != 21999 || e.cfg.KillTimeout != 5*time.Second || e.cfg.LogMaxBytes != 1<<20 {
		t.Fatalf("defaults = %+v", e.cfg)
	}
}

func TestPortsNeverTwiceAndSkipBusy(t *testing.T) {
	t.Parallel()
	min, max := portWindow(t, 3)
	busy, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(min)) // someone else's listener
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	e := newTestExec(t, func(c *ExecConfig) { c.PortMin, c.PortMax = min, max })

	h1 := start(t, e, selfSpec(t, "p1", "serve", nil))
	h2 := start(t, e, selfSpec(t, "p2", "serve", nil))
	if h1.Port == portOf(t, busy.Addr()) || h2.Port == portOf(t, busy.Addr()) || h1.Port == h2.Port {
		t.Fatalf("ports %d and %d; busy %d", h1.Port, h2.Port, min)
	}
	waitServing(t, h1)
	waitServing(t, h2)
	if _, err := e.Start(context.Background(), selfSpec(t, "p3", "serve", nil)); !errors.Is(err, ErrNoPort) {
		t.Fatalf("third Start = %v, want ErrNoPort", err)
	}
	// A port comes back when its container exits.
	if err := e.Stop(context.Background(), h1.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	h3 := start(t, e, selfSpec(t, "p3", "serve", nil))
	if h3.Port != h1.Port {
		t.Fatalf("p3 got port %d, want the freed %d", h3.Port, h1.Port)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	h := start(t, e, selfSpec(t, "rm", "serve", nil))
	if err := e.Remove(h.ID); !errors.Is(err, ErrRunning) {
		t.Fatalf("Remove of a running container = %v, want ErrRunning", err)
	}
	if hs, err := e.LoadHandles(); err != nil || len(hs) != 1 || *hs[0] != *h {
		t.Fatalf("LoadHandles = %v, %v; want the one handle %+v", hs, err, h)
	}
	if err := e.Stop(context.Background(), h.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(h.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Dir(h.Stdout)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("container dir still there: %v", err)
	}
	if hs, _ := e.LoadHandles(); len(hs) != 0 {
		t.Fatalf("LoadHandles after Remove = %v", hs)
	}
	if _, err := e.Inspect(h.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Inspect after Remove = %v", err)
	}
	if _, err := e.Tail(h.ID, 5); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Tail after Remove = %v", err)
	}
	if err := e.Remove(h.ID); err != nil {
		t.Fatalf("second Remove = %v", err)
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	e := newTestExec(t, nil)
	h := start(t, e, selfSpec(t, "talk", "exit", map[string]string{"DRIVER_TEST_LINES": "30", "DRIVER_TEST_CODE": "1"}))
	ch, _ := e.Wait(context.Background(), h.ID)
	receive(t, ch)
	got, err := e.Tail(h.ID, 4)
	if err != nil {
		t.Fatal(err)
	}
	// Stdout and stderr lines in the order the child wrote them.
	if want := "out 29\nerr 29\nout 30\nerr 30"; got != want {
		t.Fatalf("Tail = %q, want %q", got, want)
	}
	// A fresh driver on the same data dir (no task) still finds the files.
	e2, err := NewExec(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if got2, err := e2.Tail(h.ID, 4); err != nil || got2 != got {
		t.Fatalf("Tail from a new driver = %q, %v", got2, err)
	}
	if _, err := e.Tail("nope", 3); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Tail(unknown) = %v", err)
	}

	// A container an older agent started has separate stdout.log and
	// stderr.log, named by its handle: up to n lines of each.
	old := Handle{ID: "old", PID: 1, StartTime: 1, Stdout: filepath.Join(e.store.dir("old"), "stdout.log"),
		Stderr: filepath.Join(e.store.dir("old"), "stderr.log")}
	if err := os.MkdirAll(e.store.dir("old"), 0o750); err != nil {
		t.Fatal(err)
	}
	for p, text := range map[string]string{old.Stdout: "o1\no2\n", old.Stderr: "e1\ne2\n"} {
		if err := os.WriteFile(p, []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.store.save(&old); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Tail("old", 1); err != nil || got != "o2\ne2" {
		t.Fatalf("Tail of an older agent's container = %q, %v", got, err)
	}
}

func TestLogsCapped(t *testing.T) {
	t.Parallel()
	for _, copyOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("copy-only=%v", copyOnly), func(t *testing.T) {
			t.Parallel()
			const limit = 16 << 10
			e := newTestExec(t, func(c *ExecConfig) { c.LogMaxBytes = limit })
			e.noCollapse = copyOnly
			h := start(t, e, selfSpec(t, "spam", "serve", map[string]string{"DRIVER_TEST_SPAM": "300000"}))
			waitOutput(t, h.Stderr, "spam-end")
			waitServing(t, h)
			waitOutput(t, h.Stdout, "ready")
			for _, p := range []string{h.Stdout, h.Stderr} {
				eventually(t, 10*time.Second, p+" to shrink under the cap", func() bool {
					fi, err := os.Stat(p)
					return err == nil && fi.Size() <= limit
				})
			}
			// The end of the output survives the cut: stderr's spam, then
			// "ready" on stdout.
			tail, err := e.Tail(h.ID, 3)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(tail, "spam-end\n") || !strings.HasSuffix(tail, "ready") {
				b, _ := os.ReadFile(h.Stderr)
				t.Fatalf("Tail after the cap = %q; stderr %d bytes: %q", tail, len(b), b[max(0, len(b)-200):])
			}
			// The child keeps appending at the (new) end of the file.
			if err := e.Stop(context.Background(), h.ID, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			if tail, _ := e.Tail(h.ID, 1); !strings.HasPrefix(tail, "got SIGTERM") {
				t.Fatalf("last stdout line after Stop = %q", tail)
			}
			if fi, _ := os.Stat(h.Stdout); fi.Size() > limit {
				t.Fatalf("stdout.log is %d bytes, cap %d", fi.Size(), limit)
			}
		})
	}
}
