package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coexist-dev/coexist/bench/internal/benchutil"
)

// proc is one server process the benchmark started. Its output goes to a
// file, never a pipe, so that it does not die of SIGPIPE if we do.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error // set before exited is closed
	stopped bool  // we asked it to stop
}

// procs is every process started, for the cleanup on exit or signal.
var (
	procsMu sync.Mutex
	procs   []*proc
)

func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a ^C at the terminal reaches only us, and we
		// stop the servers in order.
		Setpgid: true,
		// Backstop: killed if we die without cleaning up.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p, nil
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// exitError describes a process that exited when it should not have.
func (p *proc) exitError() error {
	return fmt.Errorf("%s exited early (%v); last lines of %s:\n%s", p.name, p.err, p.logPath, tail(p.logPath, 25))
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	p.stopped = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// stopAll stops the given processes in parallel.
func stopAll(ps []*proc, grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(grace) }()
	}
	wg.Wait()
}

// killEverything kills every process started, at once: the last resort on a
// second signal.
func killEverything() {
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, p := range procs {
		if p.alive() {
			_ = p.cmd.Process.Kill()
		}
	}
}

// stopEverything stops every process still running.
func stopEverything() {
	procsMu.Lock()
	ps := append([]*proc(nil), procs...)
	procsMu.Unlock()
	stopAll(ps, 5*time.Second)
}

// cpuTime is the CPU time (user and system) the processes have used.
func cpuTime(ps []*proc) time.Duration {
	var ticks int64
	for _, p := range ps {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
		if err != nil {
			continue
		}
		// The command name may hold spaces: count fields after its ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// f[0] is field 3 (state); utime and stime are fields 14 and 15.
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * time.Second / 100 // USER_HZ is 100 on Linux
}

// Shared with the other benchmark programs.
var (
	tail         = benchutil.Tail
	freePorts    = benchutil.FreePorts
	portConflict = benchutil.PortConflict
)

// waitProcs retries check until it succeeds, one of procs dies (a failed bind
// is told apart, so the caller can retry with other ports) or ctx ends.
func waitProcs(ctx context.Context, system, what string, procs []*proc, check func() error) error {
	var err error
	for {
		for _, p := range procs {
			if !p.alive() {
				if portConflict(p.logPath) {
					return fmt.Errorf("%w: %v", errPortConflict, p.exitError())
				}
				return p.exitError()
			}
		}
		if err = check(); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: timed out waiting for %s: %v", system, what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
