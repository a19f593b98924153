package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
)

const (
	nodeID      = "bench"
	serviceName = "greeter"
	baseID      = "greeter-base"
	baseVersion = "1.0.0"
	clientRange = ">= 1.0"
)

// agent is one `coexist agent --dev`: a one-server registry, the node
// agent and its gateway in one process.
type agent struct {
	p        *proc
	api      *api.Client
	registry string // http://host:port
	gateway  string // host:port
	dir      string
}

func startAgent(ctx context.Context, o *options, dir string) (*agent, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		a, err := tryStartAgent(ctx, o, filepath.Join(dir, fmt.Sprintf("agent-%d", attempt)))
		if err == nil {
			return a, nil
		}
		lastErr = err
		if a != nil && a.p != nil {
			a.p.stop(10 * time.Second)
		}
		if !errors.Is(err, errPortConflict) || ctx.Err() != nil {
			break
		}
		fmt.Fprintln(os.Stderr, "coexist: a port was taken, retrying with others")
	}
	return nil, lastErr
}

var errPortConflict = errors.New("port conflict")

func tryStartAgent(ctx context.Context, o *options, dir string) (*agent, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok)
	token := hex.EncodeToString(tok)
	a := &agent{
		registry: fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		gateway:  fmt.Sprintf("127.0.0.1:%d", ports[2]),
		dir:      dir,
	}
	a.api, err = api.NewClient(&api.Config{Address: a.registry, Token: token,
		HTTPClient: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8}}})
	if err != nil {
		return nil, err
	}
	args := []string{"agent", "--dev",
		"--node-id", nodeID,
		"--http-addr", fmt.Sprintf("127.0.0.1:%d", ports[0]),
		"--raft-addr", fmt.Sprintf("127.0.0.1:%d", ports[1]),
		"--gateway-addr", a.gateway,
		"--port-range", o.portRange,
		"--data-dir", filepath.Join(dir, "data"),
		"--log-level", "info",
	}
	a.p, err = startProc("coexist agent", filepath.Join(dir, "agent.log"),
		append([]string{"COEXIST_MANAGEMENT_TOKEN=" + token}, o.agentEnv...), o.coexistBin, args...)
	if err != nil {
		return a, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = a.waitFor(wctx, "node "+nodeID+" registered and ready", func() error {
		n, _, err := a.api.Nodes().Info(wctx, nodeID, nil)
		if err != nil {
			return err
		}
		if n.Status != api.NodeReady {
			return fmt.Errorf("node is %q", n.Status)
		}
		return nil
	})
	return a, err
}

// waitFor retries check every 20ms until it succeeds, the agent dies or
// ctx ends.
func (a *agent) waitFor(ctx context.Context, what string, check func() error) error {
	var err error
	for {
		if !a.p.alive() {
			if portConflict(a.p.logPath) {
				return fmt.Errorf("%w: %v", errPortConflict, a.p.exitError())
			}
			return a.p.exitError()
		}
		if err = check(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("coexist: timed out waiting for %s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// declareVersion declares greeter@version for clients ">= 1.0".
func (a *agent) declareVersion(ctx context.Context, version string) error {
	_, _, err := a.api.Services().Declare(ctx, serviceName, version, api.VersionRequest{Clients: clientRange,
		Description: "gateway benchmark"}, nil)
	if err != nil {
		return fmt.Errorf("declare %s@%s: %w", serviceName, version, err)
	}
	return nil
}

// declareContainer declares container id running the greeter binary as
// greeter@version, with an HTTP health check of /healthz.
func (a *agent) declareContainer(ctx context.Context, id, version, greeterBin string) error {
	req := api.ContainerRequest{
		Node:         nodeID,
		Services:     []api.ServiceRef{{Service: serviceName, Version: version}},
		Config:       api.DriverConfig{Command: greeterBin, Args: []string{"--version", version}},
		Health:       &api.HealthCheck{HTTP: "/healthz"},
		DrainTimeout: api.Duration(2 * time.Second),
	}
	_, _, err := a.api.Containers().Declare(ctx, id, req, &api.WriteOptions{CAS: api.CAS(0)})
	if err != nil {
		return fmt.Errorf("declare container %s: %w", id, err)
	}
	return nil
}

// waitRunning waits until container id reports running with an endpoint,
// and notes its process so that it is killed at the end whatever happens.
func (a *agent) waitRunning(ctx context.Context, id string, timeout time.Duration) (*api.Container, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var c *api.Container
	err := a.waitFor(wctx, "container "+id+" running", func() error {
		var err error
		c, _, err = a.api.Containers().Info(wctx, id, nil)
		if err != nil {
			return err
		}
		if c.Status == nil {
			return errors.New("no status yet")
		}
		if c.Status.PID > 0 {
			noteOrphan(c.Status.PID)
		}
		switch c.Status.State {
		case api.ContainerRunning:
			if c.Status.Endpoint == "" {
				return errors.New("running without an endpoint")
			}
			return nil
		case api.ContainerFailed:
			return fmt.Errorf("container %s failed: %s", id, c.Status.Message)
		}
		return fmt.Errorf("state %q", c.Status.State)
	})
	if err != nil && c != nil && c.Status != nil && c.Status.State == api.ContainerFailed {
		return nil, fmt.Errorf("container %s failed: %s", id, c.Status.Message)
	}
	return c, err
}

// removeRound deletes container id and retires its version, then waits
// until the container has stopped, so that the next round starts from a
// quiet agent with a small table.
func (a *agent) removeRound(ctx context.Context, id, version string) error {
	if _, _, err := a.api.Containers().Delete(ctx, id, nil); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	if _, _, err := a.api.Services().Retire(ctx, serviceName, version, nil); err != nil && !api.IsNotFound(err) {
		return fmt.Errorf("retire %s@%s: %w", serviceName, version, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return a.waitFor(wctx, "container "+id+" stopped", func() error {
		c, _, err := a.api.Containers().Info(wctx, id, nil)
		if api.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if c.Status == nil || c.Status.State == api.ContainerStopped || c.Status.State == api.ContainerFailed {
			return nil
		}
		return fmt.Errorf("state %q", c.Status.State)
	})
}

// logProblems returns the agent log's warnings and errors, at most max.
func (a *agent) logProblems(max int) []string {
	b, err := os.ReadFile(a.p.logPath)
	if err != nil {
		return nil
	}
	var out []string
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "[ERROR]") || strings.Contains(l, "[WARN]") {
			n++
			if len(out) < max {
				if len(l) > 300 {
					l = l[:300] + "..."
				}
				out = append(out, l)
			}
		}
	}
	if n > len(out) {
		out = append(out, fmt.Sprintf("... and %d more", n-len(out)))
	}
	return out
}
