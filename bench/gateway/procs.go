package main

import (
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

// proc is one child process: the agent, an nginx master, a greeter started
// for the floor, or wrk.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	err     error
}

var (
	procsMu sync.Mutex
	procs   []*proc
	// orphans are processes we did not start but must not leave behind:
	// the containers the agent started (their own process groups, no
	// parent-death signal, by design).
	orphans []orphan
)

type orphan struct {
	pid  int
	comm string // /proc/pid/comm when noted, so that a reused pid is spared
}

// startProc starts a process in its own process group with its output in
// logPath. It is killed if this program dies without cleaning up
// (Pdeathsig), and stopped by stopEverything otherwise.
func startProc(name, logPath string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group: a ^C at the terminal reaches only us, and
		// we stop the children in order; nginx's workers share the group.
		Setpgid: true,
		// Backstop: killed if we die without cleaning up.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return track(name, cmd, logPath), nil
}

func track(name string, cmd *exec.Cmd, logPath string) *proc {
	p := &proc{name: name, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	procsMu.Lock()
	procs = append(procs, p)
	procsMu.Unlock()
	return p
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

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

// stop sends SIGTERM (to the process group: nginx's workers too), then
// SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	_ = syscall.Kill(-p.pid(), syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		<-p.exited
	}
	// Whatever else is left in its group (an nginx worker) goes too.
	_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
}

func stopAll(ps []*proc, grace time.Duration) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(grace) }()
	}
	wg.Wait()
}

// noteOrphan records a process started on our behalf by someone else (a
// container of the agent), to be killed at the end if it is still there.
func noteOrphan(pid int) {
	if pid <= 0 {
		return
	}
	comm := procComm(pid)
	procsMu.Lock()
	defer procsMu.Unlock()
	for _, o := range orphans {
		if o.pid == pid {
			return
		}
	}
	orphans = append(orphans, orphan{pid: pid, comm: comm})
}

func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// killOrphans kills the containers the agent left running (it stops them
// itself on a clean exit; this is for an agent that was killed).
func killOrphans() {
	procsMu.Lock()
	os_ := append([]orphan(nil), orphans...)
	procsMu.Unlock()
	for _, o := range os_ {
		if c := procComm(o.pid); c != "" && c == o.comm {
			_ = syscall.Kill(-o.pid, syscall.SIGKILL) // its own group (exec driver: Setpgid)
			_ = syscall.Kill(o.pid, syscall.SIGKILL)
		}
	}
}

// killEverything kills every process started, at once: the last resort on
// a second signal.
func killEverything() {
	procsMu.Lock()
	ps := append([]*proc(nil), procs...)
	procsMu.Unlock()
	for _, p := range ps {
		if p.alive() {
			_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		}
	}
	killOrphans()
}

// stopEverything stops every process still running, the agent last (it
// stops its containers), then kills any container it left.
func stopEverything() {
	procsMu.Lock()
	ps := append([]*proc(nil), procs...)
	procsMu.Unlock()
	var agents, others []*proc
	for _, p := range ps {
		if strings.HasPrefix(p.name, "coexist") {
			agents = append(agents, p)
		} else {
			others = append(others, p)
		}
	}
	stopAll(others, 5*time.Second)
	stopAll(agents, 15*time.Second)
	killOrphans()
}

// cpuTicks is the user+system CPU time, in clock ticks (1/100 s), of the
// given pids and of every process whose process group is one of pgids.
func cpuTicks(pids []int, pgids []int) int64 {
	var total int64
	seen := map[int]bool{}
	add := func(pid int, f []string) {
		if seen[pid] {
			return
		}
		seen[pid] = true
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		total += u + s
	}
	for _, pid := range pids {
		if f := statFields(pid); f != nil {
			add(pid, f)
		}
	}
	if len(pgids) > 0 {
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			f := statFields(pid)
			if f == nil {
				continue
			}
			pg, _ := strconv.Atoi(f[2])
			for _, g := range pgids {
				if pg == g {
					add(pid, f)
				}
			}
		}
	}
	return total
}

// statFields returns the fields of /proc/pid/stat after the command name:
// f[0] is field 3 (state), f[2] the process group, f[11] and f[12] utime
// and stime.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return nil
	}
	return f
}

func ticksToDuration(t int64) time.Duration { return time.Duration(t) * time.Second / 100 }

// Shared with the other benchmark programs.
var (
	tail         = benchutil.Tail
	freePorts    = benchutil.FreePorts
	portConflict = benchutil.PortConflict
)
