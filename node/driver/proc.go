package driver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is the part of /proc/<pid>/stat the driver needs.
type procStat struct {
	State     byte   // field 3: R, S, D, Z, ...
	PGID      int    // field 5
	StartTime uint64 // field 22, clock ticks since boot
}

// readProcStat reads /proc/<pid>/stat. A missing process gives an error
// satisfying errors.Is(err, os.ErrNotExist).
func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(b)
}

// parseProcStat parses the content of /proc/<pid>/stat. The command name
// (field 2) sits in parentheses and may itself hold spaces and ')', so the
// fields are counted from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("parse /proc stat: no ')'")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3; field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("parse /proc stat: %d fields after the name, want at least 20", len(f))
	}
	if len(f[0]) != 1 {
		return procStat{}, fmt.Errorf("parse /proc stat: state %q", f[0])
	}
	pgid, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: pgrp: %w", err)
	}
	st, err := strconv.ParseUint(string(f[19]), 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("parse /proc stat: starttime: %w", err)
	}
	return procStat{State: f[0][0], PGID: pgid, StartTime: st}, nil
}

// alive reports whether pid is still the process that started at startTime
// and has not exited. A zombie has exited: only its exit status remains.
func alive(pid int, startTime uint64) (bool, procStat, error) {
	st, err := readProcStat(pid)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return false, st, nil
	}
	if err != nil {
		return false, st, err
	}
	if st.StartTime != startTime || st.State == 'Z' || st.State == 'X' {
		return false, st, nil
	}
	return true, st, nil
}

// pidfdOpen opens a pidfd for pid, or returns -1 and an error when the kernel
// has none (before Linux 5.3) or forbids it.
func pidfdOpen(pid int) (int, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	return fd, nil
}

// pidfdExited reports whether the process behind pidfd has exited, waiting
// up to timeout (0: do not wait). A pidfd becomes readable when its process
// exits, whether or not its parent has reaped it yet.
func pidfdExited(fd int, timeout time.Duration) (bool, error) {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, int(timeout/time.Millisecond))
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll pidfd: %w", err)
		}
		return n > 0 && fds[0].Revents&(unix.POLLIN|unix.POLLHUP|unix.POLLERR) != 0, nil
	}
}
