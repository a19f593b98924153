package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestDevAgentContainerOutput runs a real `agent --dev` with
// COEXIST_MANAGEMENT_TOKEN set and a container that writes to stdout and
// stderr, prints its environment and fails:
//   - the agent's secrets are not in the container's environment;
//   - the failed container's message keeps its lines in the order written;
//   - a read token sees the message redacted, the management token in full;
//   - the driver's log lines reach the agent's log.
func TestDevAgentContainerOutput(t *testing.T) {
	skipShort(t)
	const mgmt = "dev-mgmt-token-4b8e1f0a9c7d2e63"
	dir := t.TempDir()
	httpAddr := freeAddr(t)
	a := &agentProc{proc: newProc("dev"), gateway: freeAddr(t), dataDir: filepath.Join(dir, "dev")}
	cmd := exec.Command(os.Args[0], "agent", "--dev", "--node-id", "n1", "--http-addr", httpAddr, "--raft-addr", freeAddr(t),
		"--gateway-addr", a.gateway, "--data-dir", a.dataDir, "--port-range", portWindow())
	cmd.Env = append(os.Environ(), "COEXIST_TEST_MAIN=1", "COEXIST_MANAGEMENT_TOKEN="+mgmt,
		"COEXIST_TOKEN=agent-env-token-0123456789")
	w := lockedWriter{a.logMu, a.log}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.cmd = cmd
	t.Cleanup(func() {
		a.kill()
		killContainers(a.dataDir)
		if t.Failed() {
			t.Logf("--- log of the dev agent:\n%s", a.logs())
		}
	})
	client := func(token string) *api.Client {
		c, err := api.NewClient(&api.Config{Address: "http://" + httpAddr, Token: token})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := client(mgmt)
	ctx := context.Background()
	waitFor(t, 30*time.Second, "node n1 to be ready", func() bool {
		n, _, err := c.Nodes().Info(ctx, "n1", nil)
		return err == nil && n.Status == api.NodeReady
	})
	if _, _, err := c.Services().Declare(ctx, "probe", "1.0.0", api.VersionRequest{Clients: ">= 1.0"}, nil); err != nil {
		t.Fatal(err)
	}
	req := api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "probe", Version: "1.0.0"}},
		Config: api.DriverConfig{Command: "/bin/sh",
			Args: []string{"-c", "echo first; echo second >&2; echo third; env; echo last >&2; exit 3"}},
		Restart: &api.RestartPolicy{Attempts: 1}}
	if _, _, err := c.Containers().Declare(ctx, "printenv", req, nil); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, 30*time.Second, "the container to fail with its output", func() bool {
		ct, _, err := c.Containers().Info(ctx, "printenv", nil)
		if err != nil || ct.Status == nil {
			return false
		}
		msg = ct.Status.Message
		return ct.Status.State == api.ContainerFailed && strings.Contains(msg, "last output")
	})

	if !strings.Contains(msg, "COEXIST_CONTAINER_ID=printenv") {
		t.Fatalf("the message lacks the container's environment: %q", msg)
	}
	for _, secret := range []string{mgmt, "agent-env-token-0123456789"} {
		if strings.Contains(msg, secret) {
			t.Errorf("the container's environment holds an agent secret: %q", msg)
		}
	}
	lines := strings.Split(msg, "\n")
	// The last run's lines: with restart.attempts = 1 the container runs
	// twice, and the tail may hold both runs.
	idx := func(s string) int {
		for i := len(lines) - 1; i >= 0; i-- {
			if lines[i] == s {
				return i
			}
		}
		return -1
	}
	if f, s, th, l := idx("first"), idx("second"), idx("third"), idx("last"); f < 0 || !(f < s && s < th && th < l && l == len(lines)-1) {
		t.Errorf("stdout and stderr lines out of the order written (first, second, third, env, last):\n%s", msg)
	}

	read, _, err := c.ACL().CreateToken(ctx, api.TokenRequest{Role: api.RoleRead}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ct, _, err := client(read.SecretID).Containers().Info(ctx, "printenv", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ct.Status == nil || ct.Status.Message != "<redacted>" {
		t.Errorf("a read token sees the message %+v, want <redacted>", ct.Status)
	}

	if log := a.logs(); !strings.Contains(log, "coexist.driver: container started: id=printenv") {
		t.Errorf("the driver's log lines do not reach the agent's log")
	}
	if strings.Contains(a.logs(), mgmt) {
		t.Errorf("the agent printed the management token")
	}
}
