package driver

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// exitLatch records a process's exit once and hands it to any number of
// waiters, before or after the fact.
type exitLatch struct {
	once sync.Once
	done chan struct{} // closed once res is set
	res  ExitResult
}

func newExitLatch() *exitLatch { return &exitLatch{done: make(chan struct{})} }

// set records r unless an exit is already recorded; it reports whether r won.
func (l *exitLatch) set(r ExitResult) bool {
	won := false
	l.once.Do(func() {
		l.res = r
		won = true
		close(l.done)
	})
	return won
}

// result returns the recorded exit, if any.
func (l *exitLatch) result() (ExitResult, bool) {
	select {
	case <-l.done:
		return l.res, true
	default:
		return ExitResult{}, false
	}
}

// wait returns a channel that receives the exit once and is then closed, or
// is closed without a value when ctx ends first. After the exit the channel
// comes back already filled and closed.
func (l *exitLatch) wait(ctx context.Context) <-chan ExitResult {
	ch := make(chan ExitResult, 1)
	if r, ok := l.result(); ok {
		ch <- r
		close(ch)
		return ch
	}
	go func() {
		defer close(ch)
		select {
		case <-l.done:
			ch <- l.res
		case <-ctx.Done():
		}
	}()
	return ch
}

// task is one container process the exec driver tracks: either its own
// child (cmd set) or a process re-adopted from a previous agent (cmd nil).
type task struct {
	h    Handle // fixed at start or recovery
	cmd  *exec.Cmd
	exit *exitLatch

	// sigMu serialises signals with the end of the process, so that a
	// signal never reaches a pid that has been reused:
	//   - a child is reaped only with sigMu held (and reaped set), so while a
	//     signaller holds it the pid still names our child or its zombie;
	//   - a re-adopted process is checked (pidfd, /proc start time) with
	//     sigMu held just before it is signalled. Its group id cannot be
	//     reused while any member of the group lives; the one window left is
	//     the leader exiting, being reaped by its new parent, the group
	//     emptying and the number being reused as a new group's id, all
	//     between the check and kill(2).
	sigMu  sync.Mutex
	reaped bool
	// pidfd pins a re-adopted process (-1: none, /proc polling instead). Only
	// its watcher closes it, with sigMu held.
	pidfd int
}

func (t *task) recovered() bool { return t.cmd == nil }

// errGone: the process has exited already; there is nothing to signal.
var errGone = errors.New("process already exited")

// signal sends sig to the container's process group.
func (t *task) signal(sig unix.Signal) error {
	t.sigMu.Lock()
	defer t.sigMu.Unlock()
	if !t.recovered() {
		if t.reaped {
			return errGone
		}
		return killGroup(t.h.PID, sig)
	}
	if _, done := t.exit.result(); done {
		return errGone
	}
	ok, st, err := t.stillOursLocked()
	if err != nil {
		return err
	}
	if !ok {
		t.exit.set(unknownExit())
		return errGone
	}
	if st.PGID != t.h.PID && t.pidfd >= 0 {
		// It left the group we gave it (setsid or setpgid to another
		// group): signal the process alone, through its pidfd.
		return unix.PidfdSendSignal(t.pidfd, sig, nil, 0)
	}
	return killGroup(t.h.PID, sig)
}

// killGroup signals the process group led by pid, or pid alone if it has
// left that group.
func killGroup(pid int, sig unix.Signal) error {
	err := unix.Kill(-pid, sig)
	if errors.Is(err, unix.ESRCH) {
		err = unix.Kill(pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return errGone
	}
	return err
}

// stillOursLocked reports whether a re-adopted process is alive and still the
// one of the handle. Callers hold sigMu.
func (t *task) stillOursLocked() (bool, procStat, error) {
	if t.pidfd >= 0 {
		exited, err := pidfdExited(t.pidfd, 0)
		if err == nil && exited {
			return false, procStat{}, nil
		}
	}
	return alive(t.h.PID, t.h.StartTime)
}

// refresh notices the exit of a re-adopted process at once (rather than at
// the watcher's next look), so that Inspect never calls a reused pid ours.
// It reports false when it cannot tell.
func (t *task) refresh() bool {
	if !t.recovered() {
		return true
	}
	t.sigMu.Lock()
	defer t.sigMu.Unlock()
	if _, done := t.exit.result(); done {
		return true
	}
	ok, _, err := t.stillOursLocked()
	if err != nil {
		return false
	}
	if !ok {
		t.exit.set(unknownExit())
	}
	return true
}

// reapChild waits for the driver's own child to exit and reaps it.
//
// It first waits with WNOWAIT, leaving the child a zombie: its pid, and so
// its process group id, cannot be reused until it is reaped. That is the
// moment to kill whatever is left of the container's process group (a
// grandchild that outlived its parent), safely; only then is the child
// reaped, with sigMu held.
func (t *task) reapChild() ExitResult {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, t.h.PID, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	t.sigMu.Lock()
	_ = unix.Kill(-t.h.PID, unix.SIGKILL)
	err := t.cmd.Wait()
	t.reaped = true
	t.sigMu.Unlock()
	return exitResultOf(t.cmd.ProcessState, err)
}

// exitResultOf turns what cmd.Wait returned into an ExitResult.
func exitResultOf(ps *os.ProcessState, waitErr error) ExitResult {
	r := ExitResult{At: time.Now()}
	if ps == nil {
		r.ExitCode = -1
		r.Err = waitErr
		return r
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		r.Signal = int(ws.Signal())
		r.ExitCode = 128 + r.Signal
		return r
	}
	r.ExitCode = ps.ExitCode()
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		r.Err = waitErr
	}
	return r
}

// unknownExit is the exit of a process that was not our child.
func unknownExit() ExitResult {
	return ExitResult{ExitCode: -1, Err: ErrExitUnknown, At: time.Now()}
}

// Watching a re-adopted process: it is not our child, so waitpid cannot
// tell us it exited. With a pidfd (Linux 5.3+) we poll it for readability,
// which the kernel signals at exit; without one we read /proc/<pid>/stat
// every procPollInterval and compare the start time.
const (
	pidfdPollTimeout = 500 * time.Millisecond // how often the pidfd watcher looks at stop
	procPollInterval = 100 * time.Millisecond
)

// watchRecovered sets t's exit once the re-adopted process is gone, or
// returns when stop is closed. It closes the pidfd when it returns.
func (t *task) watchRecovered(stop <-chan struct{}, onErr func(error)) {
	defer func() {
		t.sigMu.Lock()
		if t.pidfd >= 0 {
			_ = unix.Close(t.pidfd)
			t.pidfd = -1
		}
		t.sigMu.Unlock()
	}()
	t.sigMu.Lock()
	fd := t.pidfd
	t.sigMu.Unlock()

	var tick *time.Ticker
	for {
		select {
		case <-stop:
			return
		case <-t.exit.done: // Stop or Inspect noticed first
			return
		default:
		}
		if fd >= 0 {
			exited, err := pidfdExited(fd, pidfdPollTimeout)
			if err != nil {
				onErr(err)
				fd = -1 // fall back to /proc
				continue
			}
			if exited {
				t.exit.set(unknownExit())
				return
			}
			continue
		}
		ok, _, err := alive(t.h.PID, t.h.StartTime)
		if err == nil && !ok {
			t.exit.set(unknownExit())
			return
		}
		if tick == nil {
			tick = time.NewTicker(procPollInterval)
			defer tick.Stop()
		}
		select {
		case <-stop:
			return
		case <-t.exit.done:
			return
		case <-tick.C:
		}
	}
}
