package hostbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Proc is one process running on a host (`ip netns exec`), its output in a
// log file under the host's directory.
type Proc struct {
	Name    string
	Host    *Host
	LogPath string

	argv []string
	env  []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	starts int
	paused bool
}

// Command makes, without starting it, a process named name that runs argv on
// the host with env added to this process's environment.
func (h *Host) Command(name string, env []string, argv ...string) *Proc {
	p := &Proc{Name: name, Host: h, argv: argv, env: env, LogPath: filepath.Join(h.Dir(), name+".log")}
	h.bed.mu.Lock()
	h.bed.procs = append(h.bed.procs, p)
	h.bed.mu.Unlock()
	return p
}

// Start starts the process (again, after Kill), appending to its log.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("start %s on %s: already running", p.Name, p.Host.Name)
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	fmt.Fprintf(f, "=== %s start #%d on %s (%s)\n", time.Now().Format(time.StampMilli), p.starts+1, p.Host.Name, p.Host.IP)
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.Host.NS}, p.argv...)...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a signal to the test's group does not reach it,
	// and Kill takes its children along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s on %s: %w", p.Name, p.Host.Name, err)
	}
	f.Close()
	p.starts++
	p.cmd, p.paused = cmd, false
	done := make(chan struct{})
	p.done = done
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return nil
}

// Running reports whether the process was started and has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Starts is how many times the process was started.
func (p *Proc) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// Kill sends SIGKILL (after SIGCONT, so a paused process dies too) and waits
// for the exit. `ip netns exec` execs the command, so the pid is the
// command's own.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.paused = false
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// Pause stops the process with SIGSTOP; Resume continues it.
func (p *Proc) Pause() error  { return p.signal(syscall.SIGSTOP, true) }
func (p *Proc) Resume() error { return p.signal(syscall.SIGCONT, false) }

func (p *Proc) signal(sig syscall.Signal, paused bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("signal %s: not running", p.Name)
	}
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	p.paused = paused
	return nil
}

// Logs returns the process's log so far.
func (p *Proc) Logs() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Stop sends SIGTERM and waits up to grace for the exit, then kills.
func (p *Proc) Stop(grace time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGCONT)
	_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
	}
	p.Kill()
}
