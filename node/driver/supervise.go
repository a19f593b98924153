package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// What the exec and oci drivers share about a container's files.

// logCap keeps a container's log files under max bytes while it runs (a
// check every interval), and once more after it exits.
type logCap struct {
	paths    []string
	max      int64
	every    time.Duration
	collapse bool
	warn     func(path string, err error) // each distinct error once
}

// run checks until exited is closed (then once more) or closed is.
func (c logCap) run(exited, closed <-chan struct{}) {
	tick := time.NewTicker(c.every)
	defer tick.Stop()
	var lastErr string
	check := func() {
		for _, p := range c.paths {
			_, err := rotateLog(p, c.max, c.collapse)
			if err != nil && err.Error() != lastErr {
				c.warn(p, err)
			}
			if err != nil {
				lastErr = err.Error()
			}
		}
	}
	for {
		select {
		case <-closed:
			return
		case <-exited:
			check()
			return
		case <-tick.C:
			check()
		}
	}
}

// tailLogs returns the last lines of a container's stdout, then of its
// stderr (up to lines of each), joined by newlines. h, when not nil, names
// the files; else they are looked for in dir, which must exist.
func tailLogs(id, dir string, h *Handle, lines int) (string, error) {
	var paths []string
	switch {
	case h != nil:
		paths = h.logs()
	default:
		if _, err := os.Stat(dir); err != nil {
			return "", fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		// One output file, in the order written; a container started by an
		// older agent has two.
		paths = []string{filepath.Join(dir, outputFile)}
		if _, err := os.Stat(paths[0]); err != nil {
			paths = []string{filepath.Join(dir, stdoutFile), filepath.Join(dir, stderrFile)}
		}
	}
	return tailPaths(id, paths, lines)
}

// tailPaths returns the last lines of each of a container's log files,
// joined by newlines.
func tailPaths(id string, paths []string, lines int) (string, error) {
	var out []string
	for _, p := range paths {
		l, err := tailFile(p, lines)
		if err != nil {
			return "", fmt.Errorf("tail %s: %w", id, err)
		}
		out = append(out, l...)
	}
	return strings.Join(out, "\n"), nil
}
