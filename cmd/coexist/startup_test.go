package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// exitOf waits up to d for p to exit and returns its exit code.
func exitOf(t *testing.T, p *proc, d time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		p.cmd = nil
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		}
		t.Fatalf("%s: %v", p.id, err)
	case <-time.After(d):
		t.Fatalf("%s still runs after %s; output:\n%s", p.id, d, p.logs())
	}
	return -1
}

// TestAgentRefusedNodeExits: a real agent process whose node the registry
// would refuse does not retry for ever. A --node-id the registry's name rule
// refuses is bad usage (exit 2, one line naming the flag), checked before
// anything starts; a registration the registry refuses with another 4xx (here
// too many labels) ends the agent with the registry's reason (exit 1).
func TestAgentRefusedNodeExits(t *testing.T) {
	skipShort(t)
	srv := startCluster(t, 1)[0]
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := func(id string, extra ...string) *proc {
		p := newProc(id)
		p.run(t, append([]string{"agent", "--node-id", id, "--registry", srv.url(), "--token-file", tokenFile,
			"--gateway-addr", freeAddr(t), "--data-dir", filepath.Join(t.TempDir(), "agent"), "--port-range", portWindow()}, extra...)...)
		t.Cleanup(p.kill)
		return &p
	}

	bad := agent("Bad Node!")
	if code := exitOf(t, bad, 10*time.Second); code != 2 {
		t.Fatalf("agent --node-id 'Bad Node!': exit %d, want 2; output:\n%s", code, bad.logs())
	}
	out := strings.TrimSpace(bad.logs())
	if want := `coexist agent: --node-id: "Bad Node!" is not a valid name`; !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 0 {
		t.Fatalf("agent --node-id 'Bad Node!' said %q; want one line starting %q", out, want)
	}

	var labels []string
	for i := range 65 {
		labels = append(labels, "--label", fmt.Sprintf("k%d=v", i))
	}
	refused := agent("n1", labels...)
	if code := exitOf(t, refused, 10*time.Second); code != 1 {
		t.Fatalf("agent with 65 labels: exit %d, want 1; output:\n%s", code, refused.logs())
	}
	if out := refused.logs(); !strings.Contains(out, `coexist agent: register node "n1": the registry refuses it`) ||
		!strings.Contains(out, "labels: has more than 64 entries") {
		t.Fatalf("agent with 65 labels did not say why it stopped:\n%s", out)
	}
}

// TestServerWithoutBootstrapOrJoinSaysSo: a real server started on an empty
// data dir with neither --bootstrap nor --join says what to do, naming both
// flags, and keeps waiting; a member's POST /v1/cluster/join then adds it,
// which is why it waits rather than exit.
func TestServerWithoutBootstrapOrJoinSaysSo(t *testing.T) {
	skipShort(t)
	member := startCluster(t, 1)[0]
	lone := &serverProc{proc: newProc("lone"), httpAddr: freeAddr(t), raftAddr: freeAddr(t), dataDir: filepath.Join(t.TempDir(), "lone")}
	t.Cleanup(lone.kill)
	lone.start(t)
	waitFor(t, 10*time.Second, "the server to say what to do", func() bool {
		out := lone.logs()
		return strings.Contains(out, "neither --bootstrap nor --join: waiting to be added to a cluster") &&
			strings.Contains(out, "--join <URL of a member>") && strings.Contains(out, "POST /v1/cluster/join")
	})
	// Still up, waiting: its API answers, with no leader known.
	if _, _, err := lone.client(t).Status().Leader(context.Background(), nil); err == nil || !api.IsRetryable(err) || api.IsRetryable(err) && !strings.Contains(err.Error(), "503") {
		t.Fatalf("the waiting server's /v1/status/leader: %v; want 503 from a live server", err)
	}

	req := api.JoinRequest{ID: lone.id, RaftAddr: lone.raftAddr, HTTPAddr: lone.url()}
	if _, err := member.client(t).Cluster().Join(context.Background(), req, nil); err != nil {
		t.Fatalf("add the waiting server from a member: %v", err)
	}
	waitFor(t, 20*time.Second, "the added server to know the leader", func() bool {
		l, _, err := lone.client(t).Status().Leader(context.Background(), nil)
		return err == nil && l.ID == member.id
	})
}

// TestAgentRegistryFlag: --registry takes several URLs, repeated or separated
// by commas, the first use replacing COEXIST_ADDR; a bad one is bad usage.
func TestAgentRegistryFlag(t *testing.T) {
	reg := "http://env:7700" // as runAgent sets it from COEXIST_ADDR
	fl := &addrListFlag{list: &reg}
	for _, s := range []string{"http://a:7700,http://b:7700", "http://c:7700"} {
		if err := fl.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	got, err := api.ParseAddresses(reg)
	if want := []string{"http://a:7700", "http://b:7700", "http://c:7700"}; err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("--registry a,b --registry c = %q (%v), want %q", got, err, want)
	}

	var stdout, stderr strings.Builder
	args := []string{"--node-id", "n1", "--data-dir", t.TempDir(), "--registry", "http://a:7700", "--registry", "b:7700"}
	if code := runAgent(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `--registry: invalid registry address "b:7700"`) {
		t.Fatalf("coexist agent %q: exit %d, stderr %q", args, code, stderr.String())
	}
}
