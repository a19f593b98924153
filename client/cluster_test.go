package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	goversion "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
)

// The tests in this file's companions run real processes: `coexist agent
// --dev` (registry, agent and gateway in one process), or `coexist server`
// and `coexist agent` apart, with greeter containers (examples/greeter). The
// binaries are built once per test binary, on first use.
//
// Container ports: each test process takes the window
// 22000+100*(pid%9) .. +99 of the 22000-22899 range, which no other package
// of the module uses (node/driver takes 21000-21999, cmd/coexist 23000-23999), so that
// packages tested in parallel do not hand out the same port; the exec
// driver also skips ports something already listens on.

const testToken = "client-test-management-token-0123"

var (
	buildOnce  sync.Once
	buildDir   string
	coexistBin string
	greeterBin string
	buildErr   error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binaries builds cmd/coexist and examples/greeter, once.
func binaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real coexist and greeter processes")
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..")
		if buildDir, buildErr = os.MkdirTemp("", "coexist-client-test-"); buildErr != nil {
			return
		}
		coexistBin, greeterBin = filepath.Join(buildDir, "coexist"), filepath.Join(buildDir, "greeter")
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, target := range [][2]string{{coexistBin, "./cmd/coexist"}, {greeterBin, "./examples/greeter"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd := exec.Command("go", "build", "-o", target[0], target[1])
				cmd.Dir = root
				if out, err := cmd.CombinedOutput(); err != nil {
					errs[i] = fmt.Errorf("go build %s: %v\n%s", target[1], err, out)
				}
			}()
		}
		wg.Wait()
		buildErr = errors.Join(errs...)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
}

func portRange() string {
	base := 22000 + 100*(os.Getpid()%9)
	return fmt.Sprintf("%d-%d", base, base+99)
}

// proc is a process started by a test, with its output kept.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

func startProc(t *testing.T, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// stop signals the process and waits for it; SIGKILL after grace.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// tail returns the last n bytes of the output.
func (p *proc) tail(n int) string {
	s := p.out.String()
	if len(s) > n {
		s = "...\n" + s[len(s)-n:]
	}
	return s
}

// cluster is a registry, one node agent "n1" with its gateway, and what the
// test declared.
type cluster struct {
	t        *testing.T
	api      *api.Client
	registry string
	gateway  string

	agent     *proc
	server    *proc // only when not --dev
	serverArg []string
	agentDir  string

	mu     sync.Mutex
	ranges map[string]string // version -> its clients range, as declared
}

// startDev starts `coexist agent --dev`.
func startDev(t *testing.T) *cluster {
	t.Helper()
	binaries(t)
	c := &cluster{t: t, ranges: map[string]string{}}
	httpAddr, raftAddr := closedAddr(t), closedAddr(t)
	c.gateway = closedAddr(t)
	c.agentDir = t.TempDir() // before the cleanup that reads it, see startApart
	c.registry = "http://" + httpAddr
	c.agent = startProc(t, "agent --dev", coexistBin, []string{"COEXIST_MANAGEMENT_TOKEN=" + testToken},
		"agent", "--dev", "--node-id", "n1", "--http-addr", httpAddr, "--raft-addr", raftAddr,
		"--gateway-addr", c.gateway, "--data-dir", c.agentDir, "--port-range", portRange(), "--log-level", "info")
	t.Cleanup(c.shutdown)
	c.connect()
	return c
}

// startApart starts `coexist server --bootstrap` and `coexist agent` as two
// processes.
func startApart(t *testing.T) *cluster {
	t.Helper()
	binaries(t)
	c := &cluster{t: t, ranges: map[string]string{}}
	httpAddr, raftAddr := closedAddr(t), closedAddr(t)
	c.gateway = closedAddr(t)
	c.registry = "http://" + httpAddr
	c.serverArg = []string{"server", "--bootstrap", "--node-id", "s1", "--http-addr", httpAddr, "--raft-addr", raftAddr,
		"--data-dir", t.TempDir(), "--log-level", "info"}
	// Before the cleanup: cleanups run last first, and shutdown reads the
	// container handles in the agent's data dir.
	c.agentDir = t.TempDir()
	t.Cleanup(c.shutdown)
	c.startServer()
	c.agent = startProc(t, "agent", coexistBin, nil,
		"agent", "--node-id", "n1", "--registry", c.registry, "--token", testToken,
		"--gateway-addr", c.gateway, "--data-dir", c.agentDir, "--port-range", portRange(), "--log-level", "info")
	c.connect()
	return c
}

func (c *cluster) startServer() {
	c.t.Helper()
	c.server = startProc(c.t, "server", coexistBin, []string{"COEXIST_MANAGEMENT_TOKEN=" + testToken}, c.serverArg...)
}

// connect waits for the registry and for node n1 to be ready.
func (c *cluster) connect() {
	c.t.Helper()
	ac, err := api.NewClient(&api.Config{Address: c.registry, Token: testToken})
	if err != nil {
		c.t.Fatal(err)
	}
	c.api = ac
	c.waitFor(30*time.Second, "node n1 to be ready", func() bool {
		n, _, err := ac.Nodes().Info(context.Background(), "n1", nil)
		return err == nil && n.Status == api.NodeReady && n.Gateway == c.gateway
	})
}

func (c *cluster) shutdown() {
	if c.agent == nil {
		if c.server != nil {
			c.server.stop(syscall.SIGKILL, time.Second)
		}
		return
	}
	if c.t.Failed() {
		c.t.Logf("--- %s output:\n%s", c.agent.name, c.agent.tail(30000))
		if c.server != nil {
			c.t.Logf("--- server output:\n%s", c.server.tail(10000))
		}
	}
	// agent --dev stops its containers when it exits; a plain agent leaves
	// them running, and the test stops them.
	c.agent.stop(syscall.SIGTERM, 15*time.Second)
	if c.server != nil {
		c.server.stop(syscall.SIGKILL, time.Second)
	}
	killContainers(c.agentDir)
}

// killContainers kills the process group of every container the exec driver
// recorded (handle.json) anywhere under dataDir.
func killContainers(dataDir string) {
	_ = filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "handle.json" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var h struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(b, &h) == nil && h.PID > 0 {
			_ = syscall.Kill(-h.PID, syscall.SIGKILL)
		}
		return nil
	})
}

func (c *cluster) waitFor(d time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if c.agent.exited() {
			c.t.Fatalf("waiting for %s: %s exited", what, c.agent.name)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) declare(v, clients string) {
	c.t.Helper()
	c.mu.Lock()
	c.ranges[v] = clients
	c.mu.Unlock()
	if _, _, err := c.api.Services().Declare(context.Background(), "greeter", v, api.VersionRequest{Clients: clients}, nil); err != nil {
		c.t.Fatalf("declare greeter@%s: %v", v, err)
	}
}

func (c *cluster) retire(v string) {
	c.t.Helper()
	if _, _, err := c.api.Services().Retire(context.Background(), "greeter", v, nil); err != nil {
		c.t.Fatalf("retire greeter@%s: %v", v, err)
	}
}

// container declares container id running the greeter at version v on n1.
func (c *cluster) container(id, v string) {
	c.t.Helper()
	req := api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "greeter", Version: v}},
		Config:       api.DriverConfig{Command: greeterBin, Args: []string{"--version", v}},
		Health:       &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(500 * time.Millisecond)},
		DrainTimeout: api.Duration(10 * time.Second)}
	if _, _, err := c.api.Containers().Declare(context.Background(), id, req, nil); err != nil {
		c.t.Fatalf("declare container %s: %v", id, err)
	}
}

func (c *cluster) info(id string) *api.Container {
	ct, _, err := c.api.Containers().Info(context.Background(), id, nil)
	if err != nil {
		return nil
	}
	return ct
}

func (c *cluster) waitRunning(ids ...string) {
	c.t.Helper()
	for _, id := range ids {
		c.waitFor(30*time.Second, id+" to run", func() bool {
			ct := c.info(id)
			return ct != nil && ct.Status != nil && ct.Status.State == api.ContainerRunning
		})
	}
}

func (c *cluster) versionState(v string) string {
	s, _, err := c.api.Services().Info(context.Background(), "greeter", nil)
	if err != nil {
		return ""
	}
	for _, sv := range s.Versions {
		if sv.Version == v {
			return sv.State
		}
	}
	return ""
}

func (c *cluster) rangeOf(v string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.ranges[v]
	return r, ok
}

// newClient starts an SDK client against the cluster.
func (c *cluster) newClient(ver string, requires map[string]string, mod func(*Config)) *Client {
	c.t.Helper()
	cfg := Config{Name: "web", Version: ver, Requires: requires, Registry: c.registry, Token: testToken,
		Logger: testLogger(c.t, nil).Named("web@" + ver)}
	if mod != nil {
		mod(&cfg)
	}
	cl, err := New(context.Background(), cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// answer is one call's outcome.
type answer struct {
	start, end time.Time
	status     int
	servedBy   string // "greeter@1.2.0 g120"
	version    string // the served version
	container  string
	body       string
	err        error
}

// call makes one routed call and reads the whole answer.
func call(ctx context.Context, cl *Client, query string) answer {
	a := answer{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://greeter/hello"+query, nil)
	if err != nil {
		a.err, a.end = err, time.Now()
		return a
	}
	resp, err := cl.HTTPClient().Do(req)
	if err != nil {
		a.err = err
		a.end = time.Now()
		return a
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	a.end = time.Now()
	a.status, a.body, a.err = resp.StatusCode, string(b), err
	a.servedBy = resp.Header.Get(api.HeaderServedBy)
	if sb, err := api.ParseServedBy(a.servedBy); err == nil {
		a.version, a.container = sb.Version, sb.Container
	}
	if a.err == nil && resp.StatusCode == http.StatusOK && resp.Header.Get("Greeter-Version") != a.version {
		a.err = fmt.Errorf("Greeter-Version %q but %s %q", resp.Header.Get("Greeter-Version"), api.HeaderServedBy, a.servedBy)
	}
	return a
}

// check holds a successful answer to the routing rule: the served version
// was declared, its clients range admits the client's version, the client's
// own requirement admits the served version, and the body is the served
// version's own.
func (c *cluster) check(clientVer, requirement string, a answer) error {
	if a.version == "" || a.container == "" {
		return fmt.Errorf("bad %s %q", api.HeaderServedBy, a.servedBy)
	}
	rng, ok := c.rangeOf(a.version)
	if !ok {
		return fmt.Errorf("served by undeclared version %s", a.version)
	}
	sv := goversion.Must(goversion.NewVersion(a.version))
	if !goversion.MustConstraints(goversion.NewConstraint(rng)).Check(goversion.Must(goversion.NewVersion(clientVer))) {
		return fmt.Errorf("INCOMPATIBLE: client %s served by greeter %s, whose clients are %q", clientVer, a.version, rng)
	}
	if requirement != "" && !goversion.MustConstraints(goversion.NewConstraint(requirement)).Check(sv) {
		return fmt.Errorf("INCOMPATIBLE: client %s requiring %q served by greeter %s", clientVer, requirement, a.version)
	}
	var want string
	if sv.Segments()[0] < 2 {
		want = "hello, world (greeter " + a.version + ")\n"
	} else {
		want = `{"greeting":"hello","name":"world","version":"` + a.version + `"}` + "\n"
	}
	if a.body != want {
		return fmt.Errorf("greeter %s answered %q, want %q", a.version, a.body, want)
	}
	return nil
}

// caller calls greeter in a loop as one SDK client and keeps every answer.
type caller struct {
	cl          *Client
	ver         string
	requirement string
	query       string
	timeout     time.Duration

	mu      sync.Mutex
	answers []answer
	last    atomic.Pointer[answer]
}

func newCaller(cl *Client, ver, requirement string) *caller {
	return &caller{cl: cl, ver: ver, requirement: requirement, timeout: 5 * time.Second}
}

// run calls with workers goroutines, pausing between calls, until stop is
// closed.
func (cr *caller) run(stop <-chan struct{}, workers int, pause time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), cr.timeout)
				a := call(ctx, cr.cl, cr.query)
				cancel()
				cr.mu.Lock()
				cr.answers = append(cr.answers, a)
				cr.mu.Unlock()
				if a.err == nil && a.status == http.StatusOK {
					cr.last.Store(&a)
				}
				select {
				case <-stop:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
	return &wg
}

func (cr *caller) all() []answer {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	return append([]answer(nil), cr.answers...)
}

// lastVersion is the version that served the last successful call.
func (cr *caller) lastVersion() string {
	if a := cr.last.Load(); a != nil {
		return a.version
	}
	return ""
}

// verify checks every answer against the rule, and that none failed unless
// excuse says why it may; it returns the calls served per version.
func (cr *caller) verify(t *testing.T, c *cluster, excuse func(answer) bool) map[string]int {
	t.Helper()
	served := map[string]int{}
	failed, incompatible := 0, 0
	for _, a := range cr.all() {
		if a.err != nil || a.status != http.StatusOK {
			if excuse != nil && excuse(a) {
				continue
			}
			failed++
			if failed <= 5 {
				t.Errorf("client %s: call at %s failed: status %d, error %v, body %q", cr.label(), a.start.Format("15:04:05.000"), a.status, a.err, a.body)
			}
			continue
		}
		if err := c.check(cr.ver, cr.requirement, a); err != nil {
			incompatible++
			if incompatible <= 5 {
				t.Errorf("client %s: %v", cr.label(), err)
			}
			continue
		}
		served[a.version]++
	}
	t.Logf("client %s: %d calls, served %v, %d failed, %d incompatible", cr.label(), len(cr.all()), served, failed, incompatible)
	if failed > 0 || incompatible > 0 {
		t.Errorf("client %s: %d failed and %d incompatible calls", cr.label(), failed, incompatible)
	}
	return served
}

func (cr *caller) label() string {
	if cr.requirement != "" {
		return "web@" + cr.ver + " requiring " + cr.requirement
	}
	return "web@" + cr.ver
}
