package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestContainerLogsOnRealProcesses reads containers' output through the
// CLI, which finds the node through a real registry and asks its real
// agent: the last lines, a follow that sees new output, a read token
// refused, and the output of a deleted container kept for a post-mortem.
func TestContainerLogsOnRealProcesses(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	f.startAgent("n1")
	ctx := context.Background()
	env := []string{"COEXIST_ADDR=" + f.server.url(), "COEXIST_TOKEN=" + testToken}

	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	f.greeter("g1", "n1", "1.0.0", nil)
	f.waitState("g1", api.ContainerRunning)
	f.declare("talker", "1.0.0", ">= 1.0")
	req := api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "talker", Version: "1.0.0"}},
		Config: api.DriverConfig{Command: "/bin/sh",
			Args: []string{"-c", "echo start; echo oops >&2; i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done"}}}
	if _, _, err := f.api.Containers().Declare(ctx, "talker", req, nil); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runBinary(t, env, "containers", "logs", "g1")
	if code != 0 || !strings.Contains(out, "greeter 1.0.0 listening on") {
		t.Fatalf("containers logs g1: exit %d\n%s%s", code, out, errOut)
	}
	waitFor(t, 20*time.Second, "talker to tick", func() bool {
		_, out, _ := runBinary(t, env, "containers", "logs", "talker", "--tail", "0")
		return strings.HasPrefix(out, "start\noops\ntick 1\n") && strings.Contains(out, "tick 3\n")
	})
	if code, out, errOut := runBinary(t, env, "containers", "logs", "talker", "--tail", "2"); code != 0 || strings.Count(out, "\n") != 2 ||
		!regexp.MustCompile(`^tick \d+\ntick \d+\n$`).MatchString(out) {
		t.Errorf("containers logs --tail 2: exit %d, want two tick lines:\n%q %s", code, out, errOut)
	}

	// --follow prints the last line, then new ones as they come.
	cmd := exec.Command(os.Args[0], "containers", "logs", "talker", "--tail", "1", "--follow")
	cmd.Env = append(append(os.Environ(), "COEXIST_TEST_MAIN=1"), env...)
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	sc := bufio.NewScanner(pipe)
	first, last := -1, -1
	deadline := time.AfterFunc(20*time.Second, func() { _ = cmd.Process.Kill() })
	for sc.Scan() {
		n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "tick "))
		if err != nil {
			t.Fatalf("followed output %q is not a tick", sc.Text())
		}
		if first < 0 {
			first = n
		}
		if last >= 0 && n != last+1 {
			t.Fatalf("followed ticks out of order or lost: %d after %d", n, last)
		}
		last = n
		if last >= first+10 {
			break
		}
	}
	deadline.Stop()
	if last < first+10 {
		t.Fatalf("--follow saw ticks %d..%d, want ten new ones", first, last)
	}

	read, _, err := f.api.ACL().CreateToken(ctx, api.TokenRequest{Role: api.RoleRead}, nil)
	if err != nil {
		t.Fatal(err)
	}
	code, _, errOut = runBinary(t, []string{"COEXIST_ADDR=" + f.server.url(), "COEXIST_TOKEN=" + read.SecretID}, "containers", "logs", "g1")
	if code != 1 || !strings.Contains(errOut, "a read token may not do this") {
		t.Errorf("logs with a read token: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runBinary(t, env, "containers", "logs", "g1", "--tail", "-1"); code != 2 || !strings.Contains(errOut, "--tail -1") {
		t.Errorf("--tail -1: exit %d, %s", code, errOut)
	}

	// Deleted, the container's output is kept on its node.
	if _, _, err := f.api.Containers().Delete(ctx, "g1", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "g1 to leave the table", func() bool {
		_, _, err := f.api.Containers().Info(ctx, "g1", nil)
		return api.IsNotFound(err)
	})
	code, _, errOut = runBinary(t, env, "containers", "logs", "g1")
	if code != 1 || !strings.Contains(errOut, "--node") {
		t.Errorf("logs of a deleted container without --node: exit %d, %s", code, errOut)
	}
	waitFor(t, 10*time.Second, "g1's kept output", func() bool {
		code, out, _ = runBinary(t, env, "containers", "logs", "g1", "--node", "n1")
		return code == 0 && strings.Contains(out, "greeter 1.0.0 listening on") && strings.Contains(out, "greeter 1.0.0 shutting down")
	})
}
