package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildGreeter builds this command into a temporary directory.
func buildGreeter(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds a binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "greeter")
	out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freePort asks the kernel for a port that is free now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// startGreeter runs the binary and waits for its "listening" line. The port
// comes from the kernel and is free when chosen, but another process may take
// it before the greeter binds it: then it tries another.
func startGreeter(t *testing.T, bin string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		cmd, base, err := tryStartGreeter(t, bin, env)
		if err == nil {
			return cmd, base
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			t.Fatal(err)
		}
	}
}

func tryStartGreeter(t *testing.T, bin string, env []string) (*exec.Cmd, string, error) {
	port := freePort(t)
	cmd := exec.Command(bin, "--version", "2.3.4")
	cmd.Env = append([]string{"PORT=" + port, "PATH=" + os.Getenv("PATH")}, env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	line, err := r.ReadString('\n')
	if err != nil {
		_ = cmd.Wait()
		return nil, "", fmt.Errorf("read first line: %v; stderr: %s", err, stderr.String())
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	if want := "greeter 2.3.4 listening on 127.0.0.1:" + port + "\n"; line != want {
		t.Fatalf("first line = %q, want %q", line, want)
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	return cmd, "http://127.0.0.1:" + port, nil
}

func TestProcess(t *testing.T) {
	t.Parallel()
	bin := buildGreeter(t)

	t.Run("SIGTERM lets a call in flight finish", func(t *testing.T) {
		t.Parallel()
		cmd, base := startGreeter(t, bin)
		written := make(chan struct{})
		type result struct {
			status int
			err    error
		}
		done := make(chan result, 1)
		go func() {
			req, _ := http.NewRequest("GET", base+"/greeter/hello?name=late&delay=1s", nil)
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(written) }}
			resp, err := http.DefaultClient.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
			if err != nil {
				done <- result{err: err}
				return
			}
			resp.Body.Close()
			done <- result{status: resp.StatusCode}
		}()
		<-written
		// Give the server a moment to read the request it was sent, so that
		// it is in flight (not an idle connection) when SIGTERM arrives.
		time.Sleep(200 * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.err != nil || r.status != 200 {
			t.Fatalf("call in flight: status %d, err %v", r.status, r.err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("exit after SIGTERM: %v, want status 0", err)
		}
	})

	t.Run("GREETER_CRASH_AFTER exits with 3", func(t *testing.T) {
		t.Parallel()
		cmd, _ := startGreeter(t, bin, "GREETER_CRASH_AFTER=100ms")
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("exit = %v, want status 3", err)
		}
	})

	t.Run("no PORT fails clearly", func(t *testing.T) {
		t.Parallel()
		cmd := exec.Command(bin)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")} // and no PORT
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "PORT is not set") {
			t.Fatalf("err %v, output %q", err, out)
		}
	})
}
