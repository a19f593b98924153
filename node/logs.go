package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/driver"
	"github.com/coexist-dev/coexist/node/gateway"
)

// A container's output, served by its node's agent on the gateway's
// listener: GET /v1/containers/{id}/logs?tail=N&follow=true answers the last
// N lines (stdout and stderr in the order written, as the driver keeps them
// in one file), then, with follow, what the container writes next until the
// caller hangs up or the container's files are removed. Output may hold
// secrets, so only operator and management tokens may read it
// (docs/design.md §5, Security defaults); the agent asks the registry for
// the token's role as it does for /v1/metrics.
//
// When the agent forgets a container (it was deleted, or replaced), it
// keeps a copy of the end of its output under DataDir/logs for a
// post-mortem, bounded per node by count and total size: the oldest copies
// go first.

// LogsPathPrefix starts the path of the logs endpoint:
// LogsPathPrefix + "{id}/logs" (the gateway reserves it).
const LogsPathPrefix = gateway.LogsPathPrefix

const (
	// defaultLogTail is how many lines a request without tail gets.
	defaultLogTail = 100
	// maxLogTail bounds tail.
	maxLogTail = 100000
	// logFollowPoll is how often a follow looks for new output.
	logFollowPoll = 200 * time.Millisecond
	// logReadMax bounds what one request reads of a file at once.
	logReadMax = 4 << 20
)

// logKeeper keeps the output of forgotten containers, bounded.
type logKeeper struct {
	dir      string
	maxFiles int
	maxBytes int64 // all copies together
	perFile  int64 // the end of the output kept of one container
}

func newLogKeeper(dataDir string) *logKeeper {
	return &logKeeper{dir: filepath.Join(dataDir, "logs"), maxFiles: 100, maxBytes: 32 << 20, perFile: 1 << 20}
}

func (k *logKeeper) path(id string) string { return filepath.Join(k.dir, id+".log") }

// keep copies the end of src (at most perFile bytes) as the kept output
// of container id, replacing an older copy, then drops the oldest copies
// over the bounds. A missing src keeps nothing.
func (k *logKeeper) keep(id, src string) error {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open output: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("stat output: %w", err)
	}
	if off := fi.Size() - k.perFile; off > 0 {
		if _, err := in.Seek(off, io.SeekStart); err != nil {
			return fmt.Errorf("seek output: %w", err)
		}
	}
	if err := os.MkdirAll(k.dir, 0o700); err != nil {
		return fmt.Errorf("create logs dir: %w", err)
	}
	tmp, err := os.CreateTemp(k.dir, ".keep-*")
	if err != nil {
		return fmt.Errorf("keep output: %w", err)
	}
	_, err = io.Copy(tmp, io.LimitReader(in, k.perFile))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), k.path(id))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("keep output: %w", err)
	}
	return k.prune()
}

// prune removes the oldest copies until at most maxFiles remain, holding
// at most maxBytes together.
func (k *logKeeper) prune() error {
	ents, err := os.ReadDir(k.dir)
	if err != nil {
		return fmt.Errorf("read logs dir: %w", err)
	}
	type kept struct {
		path string
		mod  time.Time
		size int64
	}
	var all []kept
	var total int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		all = append(all, kept{filepath.Join(k.dir, e.Name()), fi.ModTime(), fi.Size()})
		total += fi.Size()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.Before(all[j].mod) })
	for len(all) > 0 && (len(all) > k.maxFiles || total > k.maxBytes) {
		if err := os.Remove(all[0].path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("prune kept logs: %w", err)
		}
		total -= all[0].size
		all = all[1:]
	}
	return nil
}

// keepLogs keeps the output of container id before the driver removes it.
func (a *Agent) keepLogs(id string) {
	lf, ok := a.cfg.Driver.(driver.LogFiler)
	if !ok {
		return
	}
	src, err := lf.LogFile(id)
	if err != nil {
		return
	}
	if err := a.keeper.keep(id, src); err != nil {
		a.logger.Warn("keep the output of a removed container", "container", id, "error", err)
	}
}

// logsRequest is a parsed GET of the logs endpoint.
type logsRequest struct {
	id     string
	tail   int
	follow bool
}

func parseLogsRequest(r *http.Request) (logsRequest, error) {
	rest := strings.TrimPrefix(r.URL.Path, LogsPathPrefix)
	id, ok := strings.CutSuffix(rest, "/logs")
	if !ok || id == "" || strings.ContainsAny(id, "/\\") || id == "." || id == ".." {
		return logsRequest{}, fmt.Errorf("path: want %s{id}/logs", LogsPathPrefix)
	}
	lr := logsRequest{id: id, tail: defaultLogTail}
	q := r.URL.Query()
	if s := q.Get("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > maxLogTail {
			return logsRequest{}, fmt.Errorf("tail: %q is not a number of lines from 0 to %d", s, maxLogTail)
		}
		lr.tail = n
	}
	if s := q.Get("follow"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return logsRequest{}, fmt.Errorf("follow: %q is not true or false", s)
		}
		lr.follow = b
	}
	return lr, nil
}

// serveLogs answers GET /v1/containers/{id}/logs.
func (a *Agent) serveLogs(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		gateway.WriteError(w, http.StatusMethodNotAllowed, false, "method "+r.Method+" not allowed on the logs of a container")
		return
	}
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err := a.tokens.AuthorizeRole(r.Context(), secret, api.RoleManagement, api.RoleOperator); err != nil {
		switch {
		case errors.Is(err, gateway.ErrUnauthorized):
			w.Header().Set("WWW-Authenticate", "Bearer")
			gateway.WriteError(w, http.StatusUnauthorized, false, "the logs of a container need a registry token: send Authorization: Bearer <token>")
		case errors.Is(err, gateway.ErrForbidden):
			gateway.WriteError(w, http.StatusForbidden, false, "the logs of a container: "+err.Error())
		default:
			a.logger.Warn("logs token not checked", "error", err)
			gateway.WriteError(w, http.StatusServiceUnavailable, false, "the logs of a container: the token could not be checked now")
		}
		return
	}
	lr, err := parseLogsRequest(r)
	if err != nil {
		gateway.WriteError(w, http.StatusBadRequest, false, err.Error())
		return
	}
	path, live := "", false
	if lf, ok := a.cfg.Driver.(driver.LogFiler); ok {
		if p, err := lf.LogFile(lr.id); err == nil {
			path, live = p, true
		}
	}
	if !live {
		if _, err := os.Stat(a.keeper.path(lr.id)); err != nil {
			gateway.WriteError(w, http.StatusNotFound, false, fmt.Sprintf("no output of container %q on node %s", lr.id, a.cfg.NodeID))
			return
		}
		path = a.keeper.path(lr.id)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if !live {
		w.Header().Set("Coexist-Logs", "kept") // the container is gone: a copy kept for a post-mortem
	}
	off, err := writeTail(w, path, lr.tail)
	if err != nil {
		a.logger.Warn("serve logs", "container", lr.id, "error", err)
		return
	}
	if !lr.follow || !live {
		return
	}
	a.followLog(r.Context(), w, path, off)
}

// writeTail writes the last n lines of the file at path (all of it when n
// is 0) and returns the offset it read to.
func writeTail(w io.Writer, path string, n int) (int64, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := fi.Size()
	start := max(0, size-logReadMax)
	buf := make([]byte, size-start)
	m, err := f.ReadAt(buf, start)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	buf = buf[:m]
	if n > 0 {
		body := bytes.TrimSuffix(buf, []byte("\n"))
		cut := len(body)
		for i := 0; i < n && cut >= 0; i++ {
			cut = bytes.LastIndexByte(body[:cut], '\n')
		}
		if cut >= 0 {
			buf = buf[cut+1:]
		}
	}
	_, err = w.Write(buf)
	return start + int64(m), err
}

// followLog writes what is appended to the file at path after off, until
// ctx ends or the file is removed. When the driver cuts the file's head
// (its size cap), following resumes at the new end.
func (a *Agent) followLog(ctx context.Context, w io.Writer, path string, off int64) {
	fl, _ := w.(http.Flusher)
	if fl != nil {
		fl.Flush()
	}
	t := time.NewTicker(logFollowPoll)
	defer t.Stop()
	buf := make([]byte, 64<<10)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f, err := os.Open(path)
		if err != nil {
			return // removed: the container is gone
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return
		}
		if fi.Size() < off {
			off = fi.Size()
		}
		for off < fi.Size() {
			m, err := f.ReadAt(buf[:min(int64(len(buf)), fi.Size()-off)], off)
			if m > 0 {
				if _, werr := w.Write(buf[:m]); werr != nil {
					f.Close()
					return
				}
				off += int64(m)
			}
			if err != nil {
				break
			}
		}
		f.Close()
		if fl != nil {
			fl.Flush()
		}
	}
}
