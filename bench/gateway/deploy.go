package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// deployRound is one declare-to-first-call measurement and one floor
// measurement, taken back to back.
type deployRound struct {
	warmup     bool
	id         string
	version    string
	total      time.Duration // T0 (just before the PUT) to the first answer served by the new container
	exec       time.Duration // T0 to the container's start, as the agent reports it (status.started_at); 0: unknown
	polls      int
	otherCalls int // answers from the other containers while waiting: 200s
	badCalls   int // answers other than 200, or errors, while waiting
	firstBad   string
	floor      time.Duration // exec of the greeter binary to its first /healthz answer
	floorPolls int
}

// pollEvery is how often the gateway, and the floor's greeter, are called.
const pollEvery = time.Millisecond

// runDeployRound declares greeter@version in a new container and calls the
// gateway every millisecond until an answer names it, then takes it away
// again; and measures the floor, in the order given.
func runDeployRound(ctx context.Context, o *options, a *agent, dir string, n int, floorFirst bool) (*deployRound, error) {
	r := &deployRound{id: fmt.Sprintf("deploy-%d", n), version: fmt.Sprintf("1.0.%d", n+1)}
	floor := func() error {
		d, polls, err := measureFloor(ctx, o.greeterBin, filepath.Join(dir, fmt.Sprintf("floor-%d.log", n)))
		r.floor, r.floorPolls = d, polls
		return err
	}
	if floorFirst {
		if err := floor(); err != nil {
			return nil, err
		}
	}
	if err := a.declareVersion(ctx, r.version); err != nil {
		return nil, err
	}
	want := serviceName + "@" + r.version + " " + r.id
	rc := newRawConn(a.gateway)
	defer rc.close()
	// One call first, so that the polling connection is open before T0.
	if _, err := rc.do(time.Now().Add(5*time.Second), true); err != nil {
		return nil, fmt.Errorf("gateway before the deploy: %w", err)
	}
	t0 := time.Now()
	if err := a.declareContainer(ctx, r.id, r.version, o.greeterBin); err != nil {
		return nil, err
	}
	deadline := t0.Add(30 * time.Second)
	for next := time.Now(); ; next = next.Add(pollEvery) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("deploy %s: no answer served by %q through the gateway after 30s (%d polls; last error: %s)\nagent log:\n%s",
				r.id, want, r.polls, r.firstBad, tail(a.p.logPath, 20))
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now() // late: do not burst to catch up
		}
		r.polls++
		ans, err := rc.do(time.Now().Add(5*time.Second), true)
		done := time.Now()
		switch {
		case err != nil:
			r.badCalls++
			if r.firstBad == "" {
				r.firstBad = err.Error()
			}
		case ans.status != 200:
			r.badCalls++
			if r.firstBad == "" {
				r.firstBad = fmt.Sprintf("status %d (served by %q)", ans.status, ans.servedBy)
			}
		case ans.servedBy == want:
			r.total = done.Sub(t0)
		default:
			r.otherCalls++
		}
		if r.total > 0 {
			break
		}
	}
	// Where the time went: the agent's record of the start.
	if c, err := a.waitRunning(ctx, r.id, 10*time.Second); err == nil && c.Status.StartedAt != nil {
		r.exec = c.Status.StartedAt.Sub(t0)
	}
	if !floorFirst {
		if err := floor(); err != nil {
			return nil, err
		}
	}
	if err := a.removeRound(ctx, r.id, r.version); err != nil {
		return nil, err
	}
	return r, nil
}

// measureFloor starts the greeter binary on a free port and calls its
// /healthz every millisecond until it answers 200: the time from just
// before the exec to that answer is the floor of any deploy.
func measureFloor(ctx context.Context, greeterBin, logPath string) (time.Duration, int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, 0, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	logf, err := os.Create(logPath)
	if err != nil {
		return 0, 0, err
	}
	defer logf.Close()
	cmd := exec.Command(greeterBin, "--version", baseVersion)
	cmd.Env = append(os.Environ(), "PORT="+strconv.Itoa(ports[0]))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	rc := newRawConnPath(addr, "/healthz")
	defer rc.close()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", greeterBin, err)
	}
	p := track("greeter (floor)", cmd, logPath)
	defer p.stop(5 * time.Second)
	deadline := t0.Add(30 * time.Second)
	polls := 0
	for next := t0; ; next = next.Add(pollEvery) {
		if ctx.Err() != nil {
			return 0, polls, ctx.Err()
		}
		if !p.alive() {
			return 0, polls, p.exitError()
		}
		if time.Now().After(deadline) {
			return 0, polls, fmt.Errorf("greeter on %s did not answer /healthz within 30s", addr)
		}
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		} else {
			next = time.Now()
		}
		polls++
		ans, err := rc.do(time.Now().Add(5*time.Second), false)
		if err == nil && ans.status == 200 {
			return time.Since(t0), polls, nil
		}
	}
}
