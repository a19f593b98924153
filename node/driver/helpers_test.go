package driver

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// portWindow returns a random window of size ports inside 21000-21999 whose
// ports can all be bound now, so that parallel tests and packages rarely
// meet. Tests never share fixed ports.
func portWindow(t *testing.T, size int) (min, max int) {
	t.Helper()
	for range 50 {
		min = DefaultPortMin + rand.IntN(DefaultPortMax-DefaultPortMin+2-size)
		max = min + size - 1
		free := true
		for p := min; p <= max && free; p++ {
			free = canBind(p)
		}
		if free {
			return min, max
		}
	}
	t.Fatalf("no free window of %d ports in %d-%d", size, DefaultPortMin, DefaultPortMax)
	return 0, 0
}

// newTestExec returns an Exec on a fresh data dir with its own port window,
// fast log checks, closed at the end of the test.
func newTestExec(t *testing.T, mod func(*ExecConfig)) *Exec {
	t.Helper()
	min, max := portWindow(t, 50)
	cfg := ExecConfig{DataDir: t.TempDir(), PortMin: min, PortMax: max, LogCheckInterval: 20 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	e, err := NewExec(cfg)
	if err != nil {
		t.Fatalf("NewExec: %v", err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// selfSpec runs the test binary in a child mode.
func selfSpec(t *testing.T, id, mode string, env map[string]string) Spec {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := map[string]string{"DRIVER_TEST_CHILD": mode}
	for k, v := range env {
		e[k] = v
	}
	return Spec{ID: id, NodeID: "node-1", Services: "orders@1.4.2,payments@1.1.0", Command: self, Env: e}
}

// start starts spec and makes sure its process group is gone at the end of
// the test, whatever the test did to the driver.
func start(t *testing.T, e *Exec, spec Spec) *Handle {
	t.Helper()
	h, err := e.Start(context.Background(), spec)
	if err != nil {
		t.Fatalf("Start(%s): %v", spec.ID, err)
	}
	killAtCleanup(t, h)
	return h
}

// killAtCleanup kills h's process group at the end of the test, if h's
// process (same start time) still runs.
func killAtCleanup(t *testing.T, h *Handle) {
	t.Cleanup(func() {
		if ok, _, _ := alive(h.PID, h.StartTime); ok {
			_ = unix.Kill(-h.PID, unix.SIGKILL)
		}
	})
}

// eventually polls cond every 10ms until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

// get fetches http://endpoint/path and returns the body.
func get(endpoint, path string) (string, error) {
	resp, err := httpClient.Get("http://" + endpoint + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), errors.New(resp.Status)
	}
	return string(b), err
}

// waitServing waits until the container answers on its endpoint.
func waitServing(t *testing.T, h *Handle) string {
	t.Helper()
	var body string
	eventually(t, 10*time.Second, "container "+h.ID+" to serve on "+h.Endpoint, func() bool {
		var err error
		body, err = get(h.Endpoint, "/")
		return err == nil
	})
	return body
}

// waitOutput waits until the file at path contains substr, and returns the
// content.
func waitOutput(t *testing.T, path, substr string) string {
	t.Helper()
	var s string
	eventually(t, 10*time.Second, path+" to contain "+strconv.Quote(substr), func() bool {
		b, _ := os.ReadFile(path)
		s = string(b)
		return strings.Contains(s, substr)
	})
	return s
}

// receive waits for an exit on ch.
func receive(t *testing.T, ch <-chan ExitResult) ExitResult {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("wait channel closed without a result")
		}
		return r
	case <-time.After(15 * time.Second):
		t.Fatal("timed out waiting for an exit")
	}
	return ExitResult{}
}

// dead reports whether pid has exited (gone, or a zombie nobody reaped).
func dead(pid int) bool {
	st, err := readProcStat(pid)
	if err != nil {
		return errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH)
	}
	return st.State == 'Z' || st.State == 'X'
}

// portOf returns the port of a listener address.
func portOf(t *testing.T, addr net.Addr) int {
	t.Helper()
	return addr.(*net.TCPAddr).Port
}
