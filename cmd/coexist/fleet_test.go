package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client/callpolicy"
	version "github.com/hashicorp/go-version"
)

var (
	greeterOnce sync.Once
	greeterBin  string
	greeterErr  error
)

// greeterPath builds examples/greeter once per test binary.
func greeterPath(t *testing.T) string {
	t.Helper()
	greeterOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(file), "..", "..")
		dir, err := os.MkdirTemp("", "coexist-greeter-")
		if err != nil {
			greeterErr = err
			return
		}
		greeterBin = filepath.Join(dir, "greeter")
		cmd := exec.Command("go", "build", "-o", greeterBin, "./examples/greeter")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static: it goes into images too
		if out, err := cmd.CombinedOutput(); err != nil {
			greeterErr = fmt.Errorf("build greeter: %v\n%s", err, out)
		}
	})
	if greeterErr != nil {
		t.Fatal(greeterErr)
	}
	return greeterBin
}

// portWindow gives each test its own 40-port window of container ports in
// 23000-23999, so that tests running in parallel never hand out the same
// container port. Other packages keep to their own ranges: node/driver's
// tests draw from 21000-21999, client's from 22000-22899, provider's
// 22900-22999.
var portWindowNext atomic.Int32

func portWindow() string {
	base := 23000 + 40*((int(portWindowNext.Add(1))+os.Getpid()%10*2)%25)
	return fmt.Sprintf("%d-%d", base, base+39)
}

// fleet is a real registry server process and real agent processes.
type fleet struct {
	t *testing.T
	// driver runs the greeter containers: "" (exec) or "oci" (from images
	// of the same static greeter, see greeterImage).
	driver string
	server *serverProc
	api    *api.Client
	agents map[string]*agentProc
}

// agentProc is one real `coexist agent` process.
type agentProc struct {
	proc
	gateway, dataDir, ports, registry string
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	procs := startCluster(t, 1)
	return newFleetOn(t, procs[0], procs[0].client(t))
}

// newFleetOn makes a fleet whose agents talk to server by default and whose
// test calls go through c.
func newFleetOn(t *testing.T, server *serverProc, c *api.Client) *fleet {
	t.Helper()
	f := &fleet{t: t, server: server, api: c, agents: map[string]*agentProc{}}
	t.Cleanup(func() {
		for _, a := range f.agents {
			a.kill()
		}
		if t.Failed() {
			for _, a := range f.agents {
				t.Logf("--- log of agent %s:\n%s", a.id, a.logs())
			}
		}
		// Containers outlive agents: stop what the test started.
		for _, a := range f.agents {
			killContainers(a.dataDir)
		}
	})
	return f
}

func killContainers(dataDir string) {
	var matches []string
	_ = filepath.WalkDir(dataDir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == "handle.json" {
			matches = append(matches, path)
		}
		return nil
	})
	for _, m := range matches {
		b, err := os.ReadFile(m)
		if err != nil {
			continue
		}
		var h struct {
			PID int `json:"pid"`
		}
		if jsonUnmarshal(b, &h) == nil && h.PID > 0 {
			_ = syscall.Kill(-h.PID, syscall.SIGKILL)
		}
	}
}

// startAgent starts the agent of node id, with the registry URL it was
// first started with (f.server's, unless addAgent said otherwise).
func (f *fleet) startAgent(id string, extra ...string) *agentProc {
	f.t.Helper()
	a := f.agents[id]
	if a == nil {
		a = f.addAgent(id, f.server.url())
	}
	a.run(f.t, append([]string{"agent", "--node-id", id, "--registry", a.registry, "--token", testToken,
		"--gateway-addr", a.gateway, "--data-dir", a.dataDir, "--port-range", a.ports, "--log-level", "debug"}, extra...)...)
	waitFor(f.t, 20*time.Second, "node "+id+" to register", func() bool {
		n, _, err := f.api.Nodes().Info(context.Background(), id, nil)
		return err == nil && n.Status == api.NodeReady && n.Gateway == a.gateway
	})
	return a
}

// addAgent makes, without starting it, the agent of node id that is given
// registry as --registry.
func (f *fleet) addAgent(id, registry string) *agentProc {
	a := &agentProc{proc: newProc(id), gateway: freeAddr(f.t), dataDir: filepath.Join(f.t.TempDir(), id),
		ports: portWindow(), registry: registry}
	f.agents[id] = a
	return a
}

func (f *fleet) declare(service, ver, clients string) {
	f.t.Helper()
	if _, _, err := f.api.Services().Declare(context.Background(), service, ver, api.VersionRequest{Clients: clients}, nil); err != nil {
		f.t.Fatalf("declare %s@%s: %v", service, ver, err)
	}
}

func (f *fleet) retire(service, ver string) {
	f.t.Helper()
	if _, _, err := f.api.Services().Retire(context.Background(), service, ver, nil); err != nil {
		f.t.Fatalf("retire %s@%s: %v", service, ver, err)
	}
}

// greeter declares a container running the greeter at version ver.
func (f *fleet) greeter(id, nodeID, ver string, env map[string]string) {
	f.t.Helper()
	req := api.ContainerRequest{Node: nodeID, Services: []api.ServiceRef{{Service: "greeter", Version: ver}},
		Config:       api.DriverConfig{Command: greeterPath(f.t), Args: []string{"--version", ver}, Env: env},
		Health:       &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(200 * time.Millisecond)},
		DrainTimeout: api.Duration(20 * time.Second)}
	if f.driver == "oci" {
		req.Driver, req.Config.Command, req.Config.Image = "oci", "", greeterImage(f.t, ver)
	}
	if _, _, err := f.api.Containers().Declare(context.Background(), id, req, &api.WriteOptions{CAS: api.CAS(0)}); err != nil {
		f.t.Fatalf("declare container %s: %v", id, err)
	}
}

func (f *fleet) container(id string) *api.Container {
	f.t.Helper()
	c, _, err := f.api.Containers().Info(context.Background(), id, nil)
	if err != nil {
		f.t.Fatalf("container %s: %v", id, err)
	}
	return c
}

func (f *fleet) waitState(id, state string) *api.Container {
	f.t.Helper()
	var c *api.Container
	waitFor(f.t, 30*time.Second, id+" to be "+state, func() bool {
		got, _, err := f.api.Containers().Info(context.Background(), id, nil)
		if err != nil {
			return false
		}
		c = got
		return c.Status != nil && c.Status.State == state
	})
	return c
}

func (f *fleet) waitVersion(service, ver, state string) {
	f.t.Helper()
	waitFor(f.t, 40*time.Second, service+"@"+ver+" to be "+state, func() bool {
		s, _, err := f.api.Services().Info(context.Background(), service, nil)
		if err != nil {
			return false
		}
		for _, v := range s.Versions {
			if v.Version == ver {
				return v.State == state
			}
		}
		return false
	})
}

// caller calls greeter through a gateway as one client version, retrying
// refused connections and `Coexist-Retry: safe` answers with backoff within
// each call's deadline, and checks every served answer against the rule.
type caller struct {
	gateway, client, version string
	ranges                   map[string]string // served version -> its clients range
	rangesMu                 *sync.Mutex
	http                     *http.Client

	ok, failed, retries atomic.Int64
	servedMu            sync.Mutex
	served              map[string]int // "version container" -> calls
	errs                []string
}

func newCaller(gateway, client, ver string, ranges map[string]string, mu *sync.Mutex) *caller {
	return &caller{gateway: gateway, client: client, version: ver, ranges: ranges, rangesMu: mu,
		http:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		served: map[string]int{}}
}

func (c *caller) call(ctx context.Context, query string) (string, error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	var policy callpolicy.Call
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.gateway+"/greeter/hello"+query, nil)
		req.Header.Set(api.HeaderClient, c.client)
		req.Header.Set(api.HeaderClientVersion, c.version)
		resp, err := c.http.Do(req)
		outcome := callpolicy.Classify(resp, err)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && rerr == nil {
				served := resp.Header.Get(api.HeaderServedBy)
				return served, c.check(served)
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		pause, again := policy.Retry(outcome, true, time.Now(), deadline, callpolicy.SharedRand{})
		if !again {
			if callpolicy.Retryable(outcome) {
				return "", fmt.Errorf("deadline passed while retrying: %w", err)
			}
			return "", err
		}
		c.retries.Add(1)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("deadline passed while retrying: %w", ctx.Err())
		case <-time.After(pause):
		}
	}
}

// check verifies a Coexist-Served-By answer against the routing rule: the
// served version's client range admits this client's version.
func (c *caller) check(served string) error {
	sb, err := api.ParseServedBy(served)
	if err != nil {
		return err
	}
	ver, container := sb.Version, sb.Container
	c.rangesMu.Lock()
	rng, known := c.ranges[ver]
	c.rangesMu.Unlock()
	if !known {
		return fmt.Errorf("served by undeclared version %s", ver)
	}
	cons, err := version.NewConstraint(rng)
	if err != nil {
		return err
	}
	if !cons.Check(version.Must(version.NewVersion(c.version))) {
		return fmt.Errorf("INCOMPATIBLE: client %s served by %s (clients %q)", c.version, ver, rng)
	}
	c.servedMu.Lock()
	c.served[ver+" "+container]++
	c.servedMu.Unlock()
	return nil
}

// load calls at a steady rate (calls per second, spread over workers) until
// stop is closed.
func (c *caller) load(stop <-chan struct{}, rate, workers int, deadline time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	interval := time.Duration(workers) * time.Second / time.Duration(rate)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(interval)
			defer t.Stop()
			time.Sleep(time.Duration(w) * interval / time.Duration(workers))
			for {
				select {
				case <-stop:
					return
				case <-t.C:
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				_, err := c.call(ctx, "")
				cancel()
				if err != nil {
					c.failed.Add(1)
					c.servedMu.Lock()
					if len(c.errs) < 10 {
						c.errs = append(c.errs, err.Error())
					}
					c.servedMu.Unlock()
				} else {
					c.ok.Add(1)
				}
			}
		}()
	}
	return &wg
}

func (c *caller) assertNoFailures(t *testing.T) {
	t.Helper()
	c.servedMu.Lock()
	defer c.servedMu.Unlock()
	t.Logf("client %s@%s: %d ok, %d failed, %d retries, served %v", c.client, c.version, c.ok.Load(), c.failed.Load(), c.retries.Load(), c.served)
	if c.failed.Load() != 0 {
		t.Fatalf("client %s: %d failed calls: %v", c.version, c.failed.Load(), c.errs)
	}
	if c.ok.Load() == 0 {
		t.Fatalf("client %s made no successful call", c.version)
	}
}

func (c *caller) servedBy(ver string) int {
	c.servedMu.Lock()
	defer c.servedMu.Unlock()
	n := 0
	for k, v := range c.served {
		if strings.HasPrefix(k, ver+" ") {
			n += v
		}
	}
	return n
}

func jsonUnmarshal(b []byte, v any) error { return jsonDecode(bytes.NewReader(b), v) }

var httpClientNoKeepAlive = http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
