package hostbed

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/hashicorp/go-hclog"
)

const testToken = "hostbed-management-token-0123456789"

// TestMain lets the test binary act as a helper on a host (RunRole) and
// builds the binaries the bed runs, unless COEXIST_BIN_DIR names them.
func TestMain(m *testing.M) {
	if code, ok := RunRole(); ok {
		os.Exit(code)
	}
	code := m.Run()
	if builtBins != "" {
		os.RemoveAll(builtBins)
	}
	os.Exit(code)
}

// builtBins is the temporary directory bins built into, removed at the end.
var builtBins string

var binDir string

// bins returns the directory of the coexist and greeter binaries: that of
// COEXIST_BIN_DIR, else built once into a temporary one.
func bins(t *testing.T) string {
	t.Helper()
	if binDir != "" {
		return binDir
	}
	if d := os.Getenv("COEXIST_BIN_DIR"); d != "" {
		binDir = d
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	dir, err := os.MkdirTemp("", "cxbed-bin-")
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range []string{"cmd/coexist", "examples/greeter"} {
		cmd := exec.Command("go", "build", "-o", dir, "./"+pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", pkg, err, out)
		}
	}
	binDir, builtBins = dir, dir
	return dir
}

// newBed makes a bed for t, removed when t ends, whether it passed or not;
// where namespaces cannot be made it skips t with one loud line.
func newBed(t *testing.T) *Bed {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("SKIPPED: %v: the host test bed needs root, ip and nft", err)
	}
	dir, err := os.MkdirTemp("", "cxbed-run-")
	if err != nil {
		t.Fatal(err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "hostbed", Level: hclog.Info, Output: testWriter{t}})
	b, err := New(Config{Dir: dir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs kept in %s", dir)
			for _, p := range b.procs {
				t.Logf("--- tail of %s on %s:\n%s", p.Name, p.Host.Name, tail(p.Logs(), 40))
			}
		}
		if err := b.Close(); err != nil {
			t.Errorf("close bed: %v", err)
		}
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	return b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func tail(s string, n int) string {
	lines := 0
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			lines++
			if lines > n {
				return s[i+1:]
			}
		}
	}
	return s
}

// TestBedHostsReachAndCut starts 3 servers and an agent, each on its own
// host, checks that the hosts reach each other and that the agent's node
// registers, then cuts s3 off from s1 and s2 with nft rules and sees it cut
// (no TCP from s3 to s1, s1 to s3) while s1 and s2 keep a leader, and
// heals it. Afterwards no namespace or link of the bed is left.
func TestBedHostsReachAndCut(t *testing.T) {
	b := newBed(t)
	ctx := context.Background()
	c, err := NewCluster(b, ClusterConfig{BinDir: bins(t), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartServers(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartAgent(ctx, "n1", c.Servers[1], c.Servers[2]); err != nil {
		t.Fatal(err)
	}
	s1, s2, s3 := c.Servers[0], c.Servers[1], c.Servers[2]
	n1 := b.Host("n1")
	for _, s := range c.Servers {
		if !n1.CanDial(fmt.Sprintf("%s:%d", s.Host.IP, httpPort)) {
			t.Fatalf("n1 cannot reach %s", s.ID)
		}
	}
	if !s3.Host.CanDial(fmt.Sprintf("%s:%d", s1.Host.IP, raftPort)) {
		t.Fatal("s3 cannot reach s1's raft port before the cut")
	}
	if err := b.Split([]*Host{s3.Host}, []*Host{s1.Host, s2.Host}); err != nil {
		t.Fatal(err)
	}
	if s3.Host.CanDial(fmt.Sprintf("%s:%d", s1.Host.IP, raftPort)) {
		t.Fatal("s3 reaches s1 through the cut")
	}
	if s1.Host.CanDial(fmt.Sprintf("%s:%d", s3.Host.IP, httpPort)) {
		t.Fatal("s1 reaches s3 through the cut")
	}
	if !n1.CanDial(fmt.Sprintf("%s:%d", s3.Host.IP, httpPort)) {
		t.Fatal("the cut between servers cut n1 off from s3")
	}
	// The majority keeps a leader; the cut-off server has none it knows.
	if err := poll(ctx, 20*time.Second, "s3 to lose the leader", func() bool {
		_, _, err := c.ServerClient(s3).Status().Leader(ctx, nil)
		return api.IsRetryable(err)
	}); err != nil {
		t.Fatal(err)
	}
	if l := c.Leader(ctx); l == nil || l == s3 {
		t.Fatalf("leader during the cut: %v", l)
	}
	if err := b.Heal(); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, 20*time.Second, "s3 to know the leader again", func() bool {
		_, meta, err := c.ServerClient(s3).Nodes().List(ctx, &api.QueryOptions{AllowStale: true})
		return err == nil && meta.KnownLeader
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if out, _ := run("ip", "netns", "list"); containsTag(out, b.tag) {
		t.Fatalf("namespaces left after Close:\n%s", out)
	}
	if out, _ := run("ip", "-o", "link", "show"); containsTag(out, bridgePrefix+b.tag) || containsTag(out, vethPrefix+b.tag) {
		t.Fatalf("links left after Close:\n%s", out)
	}
}

func containsTag(out, tag string) bool {
	return strings.Contains(out, nsPrefix+tag+"-") || strings.Contains(out, tag+":") || strings.Contains(out, tag+"h")
}

// TestSweepRemovesStaleBeds plants what a killed run leaves (a namespace, a
// bridge and a veth named for a process that is gone, a process in the
// namespace) and a live bed's, and expects Sweep to remove the first only.
func TestSweepRemovesStaleBeds(t *testing.T) {
	b := newBed(t) // live: its own namespace must survive the sweep
	live, err := b.AddHost("live")
	if err != nil {
		t.Fatal(err)
	}
	const dead = "4194999" // above the kernel's largest pid
	ns, br, veth := nsPrefix+dead+"-x", bridgePrefix+dead, vethPrefix+dead+"h0"
	t.Cleanup(func() { // in case Sweep fails to
		_, _ = run("ip", "netns", "del", ns)
		_, _ = run("ip", "link", "del", br)
		_, _ = run("ip", "link", "del", veth)
	})
	for _, s := range [][]string{{"ip", "netns", "add", ns}, {"ip", "link", "add", br, "type", "bridge"},
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns}} {
		if _, err := run(s...); err != nil {
			t.Fatal(err)
		}
	}
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleeper.Wait() }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	if err := poll(context.Background(), 5*time.Second, "the process to enter the namespace", func() bool {
		out, _ := run("ip", "netns", "pids", ns)
		return strings.TrimSpace(out) != ""
	}); err != nil {
		t.Fatal(err)
	}
	Sweep(hclog.NewNullLogger())
	nsList, _ := run("ip", "netns", "list")
	links, _ := run("ip", "-o", "link", "show")
	if strings.Contains(nsList, ns) || strings.Contains(links, br+":") || strings.Contains(links, veth) {
		t.Fatalf("stale bed left after Sweep:\n%s\n%s", nsList, links)
	}
	if !strings.Contains(nsList, live.NS) || !strings.Contains(links, b.bridge+":") {
		t.Fatalf("Sweep removed a live bed's namespace or bridge:\n%s\n%s", nsList, links)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the process in the stale namespace still runs")
	}
}

// TestSlowLink delays a server's host by 300ms through the bed's proxy and
// sees a request from the control host take at least twice that (there and
// back), then ends the delay and sees it fast again.
func TestSlowLink(t *testing.T) {
	b := newBed(t)
	ctx := context.Background()
	c, err := NewCluster(b, ClusterConfig{BinDir: bins(t), Token: testToken})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartServers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	s1 := c.Servers[0]
	took := func() time.Duration {
		t.Helper()
		// A client of its own: new connections, which the redirect takes.
		cl, err := api.NewClient(&api.Config{Address: s1.URL(), Token: testToken,
			HTTPClient: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, _, err := cl.Status().Leader(ctx, nil); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	if d := took(); d > 200*time.Millisecond {
		t.Fatalf("a request took %s before the delay", d)
	}
	const delay = 300 * time.Millisecond
	if err := b.Slow(s1.Host, delay); err != nil {
		t.Fatal(err)
	}
	if d := took(); d < 2*delay {
		t.Fatalf("a request took %s with a delay of %s each way", d, delay)
	}
	if err := b.Heal(); err != nil {
		t.Fatal(err)
	}
	if d := took(); d > 200*time.Millisecond {
		t.Fatalf("a request took %s after the heal", d)
	}
}
