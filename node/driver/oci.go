package driver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// OCIConfig configures the oci driver.
type OCIConfig struct {
	// DataDir holds the driver's containers (DataDir/containers/<id>/:
	// handle.json, config.json, stdout.log, stderr.log) and runc's state
	// (DataDir/runc). Required.
	DataDir string
	// Images unpacks images (node/image). Required.
	Images ImageStore
	// Runc is the runc binary (default: "runc" in PATH).
	Runc string
	// PortMin, PortMax, KillTimeout, LogMaxBytes and LogCheckInterval are
	// as in ExecConfig, with the same defaults.
	PortMin, PortMax int
	// Ports, when set, is a pool shared with the agent's other drivers;
	// PortMin and PortMax are then ignored.
	Ports            *Ports
	KillTimeout      time.Duration
	LogMaxBytes      int64
	LogCheckInterval time.Duration
	// TmpBytes bounds the container's writable /tmp (a tmpfs; default 64 MiB).
	TmpBytes int64
	Logger   hclog.Logger
}

// DefaultTmpBytes is the default size of an oci container's /tmp.
const DefaultTmpBytes = 64 << 20

// OCI runs each container with runc from an OCI image (docs/design.md §6):
// its own pid, mount, ipc and uts namespaces, the host's network with a port
// of the driver's range, a read-only root (the image, unpacked once per
// digest and shared) with a writable /tmp, and cgroup limits from the
// spec's Resources.
//
// A container is run by `runc run --keep` in the foreground, as the agent's
// child in its own process group: runc waits for the container and exits
// with its status (128+signal when a signal killed it), which is how the
// driver learns the exit code. --keep leaves the container's cgroup in place
// after the exit, so that the driver can read whether the kernel OOM-killed
// it before it deletes the container (`runc delete`). The container outlives
// the agent like an exec container: a new agent re-adopts it by `runc state`
// and watches its init process with a pidfd (its exit code then unknown, an
// OOM kill still known from its cgroup).
type OCI struct {
	cfg    OCIConfig
	log    hclog.Logger
	store  store
	root   string // runc --root
	cgroup string // relative cgroup parent of this driver's containers

	mu       sync.Mutex
	tasks    map[string]*ociTask
	starting map[string]struct{}
	ports    *Ports

	closed    chan struct{}
	closeOnce sync.Once
}

var (
	_ Driver    = (*OCI)(nil)
	_ Recoverer = (*OCI)(nil)
	_ LogTailer = (*OCI)(nil)
	_ LogFiler  = (*OCI)(nil)
	_ Remover   = (*OCI)(nil)
)

// ociTask is one container the oci driver tracks.
type ociTask struct {
	h    Handle
	cmd  *exec.Cmd // the foreground runc; nil when re-adopted
	exit *exitLatch
	// pidfd pins a re-adopted container's init process (-1: none).
	pidfd int
}

// NewOCI checks cfg, fills its defaults and checks that runc runs.
func NewOCI(cfg OCIConfig) (*OCI, error) {
	ec, err := ExecConfig{DataDir: cfg.DataDir, PortMin: cfg.PortMin, PortMax: cfg.PortMax, KillTimeout: cfg.KillTimeout,
		LogMaxBytes: cfg.LogMaxBytes, LogCheckInterval: cfg.LogCheckInterval}.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("oci driver: %w", errors.Unwrap(err))
	}
	cfg.DataDir, cfg.PortMin, cfg.PortMax, cfg.KillTimeout = ec.DataDir, ec.PortMin, ec.PortMax, ec.KillTimeout
	cfg.LogMaxBytes, cfg.LogCheckInterval = ec.LogMaxBytes, ec.LogCheckInterval
	if cfg.Images == nil {
		return nil, errors.New("oci driver: an image store is required")
	}
	if cfg.TmpBytes == 0 {
		cfg.TmpBytes = DefaultTmpBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Runc == "" {
		cfg.Runc = "runc"
	}
	runc, err := exec.LookPath(cfg.Runc)
	if err != nil {
		return nil, fmt.Errorf("oci driver: runc: %w (install it: apt-get install runc)", err)
	}
	cfg.Runc = runc
	st, err := newStore(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	root := filepath.Join(cfg.DataDir, "runc")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("oci driver: %w", err)
	}
	// Relative: runc puts it under the agent's own cgroup. Named after the
	// data dir, so that two agents on one machine never share one.
	sum := sha256.Sum256([]byte(cfg.DataDir))
	return &OCI{
		cfg: cfg, log: cfg.Logger.Named("oci"), store: st, root: root,
		cgroup:   "coexist-" + hex.EncodeToString(sum[:4]),
		tasks:    map[string]*ociTask{},
		starting: map[string]struct{}{},
		ports:    portsOf(cfg.Ports, cfg.PortMin, cfg.PortMax),
		closed:   make(chan struct{}),
	}, nil
}

// Close stops the driver's background work; containers keep running.
func (o *OCI) Close() error {
	o.closeOnce.Do(func() { close(o.closed) })
	return nil
}

// runc runs a runc command to its end and returns its output.
func (o *OCI) runc(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, o.cfg.Runc, append([]string{"--root", o.root}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("runc %s: %w: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// Start unpacks the image (once per digest), writes the container's bundle
// and runs it; it returns once runc has created the container and its init
// process runs (not once it is healthy).
func (o *OCI) Start(ctx context.Context, spec Spec) (*Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if spec.Image == "" {
		return nil, fmt.Errorf("%w: image: must not be empty", ErrInvalidSpec)
	}
	select {
	case <-o.closed:
		return nil, ErrClosed
	default:
	}
	t0 := time.Now()
	img, err := o.cfg.Images.Unpack(ctx, spec.Image)
	tImage := time.Since(t0)
	if err != nil {
		return nil, fmt.Errorf("start %s: image: %w", spec.ID, err)
	}
	o.mu.Lock()
	if t, ok := o.tasks[spec.ID]; ok {
		if _, done := t.exit.result(); !done {
			o.mu.Unlock()
			return nil, fmt.Errorf("start %s: %w (pid %d)", spec.ID, ErrRunning, t.h.PID)
		}
	}
	if _, ok := o.starting[spec.ID]; ok {
		o.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w (starting)", spec.ID, ErrRunning)
	}
	port, err := o.ports.alloc(spec.ID)
	if err != nil {
		o.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	o.starting[spec.ID] = struct{}{}
	o.mu.Unlock()

	t, err := o.run(ctx, spec, img, port)

	o.mu.Lock()
	delete(o.starting, spec.ID)
	if err != nil {
		o.ports.release(port, spec.ID)
		o.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	o.tasks[spec.ID] = t
	o.mu.Unlock()
	o.log.Info("container started", "id", spec.ID, "pid", t.h.PID, "port", port, "image", spec.Image, "digest", img.Digest,
		"image_took", tImage, "took", time.Since(t0))
	go o.capLogs(t)
	return &t.h, nil
}

// run writes the bundle, starts `runc run` and waits for the container's
// pid; it leaves nothing running when it fails.
func (o *OCI) run(ctx context.Context, spec Spec, img Image, port int) (*ociTask, error) {
	dir := o.store.dir(spec.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create container dir: %w", err)
	}
	t0 := time.Now()
	// A container of this id left behind by an earlier run (an agent that
	// died before it deleted it). runc keeps a container's state in
	// <root>/<id>: where there is none, a `runc delete` would only cost a
	// runc exec on every start.
	if _, err := os.Lstat(filepath.Join(o.root, spec.ID)); err == nil {
		_, _ = o.runc(ctx, "delete", "--force", spec.ID)
	}
	tDelete := time.Since(t0)
	cfgJSON, err := json.MarshalIndent(o.runtimeSpec(spec, img, port), "", " ")
	if err != nil {
		return nil, fmt.Errorf("encode bundle config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfgJSON, 0o640); err != nil {
		return nil, fmt.Errorf("write bundle config: %w", err)
	}
	// stdout and stderr share one file, so the lines stay in the order
	// written, as with exec.
	outputPath := filepath.Join(dir, outputFile)
	output, err := openLog(outputPath)
	if err != nil {
		return nil, err
	}
	defer output.Close()
	pidFile := filepath.Join(dir, "init.pid")
	_ = os.Remove(pidFile)
	// As the exec driver's child: no context, its own process group, files
	// for its output, so that runc and the container outlive the agent.
	cmd := &exec.Cmd{
		Path:        o.cfg.Runc,
		Args:        []string{o.cfg.Runc, "--root", o.root, "run", "--keep", "--bundle", dir, "--pid-file", pidFile, spec.ID},
		Dir:         dir,
		Stdout:      output,
		Stderr:      output,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	tRun := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec runc: %w", err)
	}
	t := &ociTask{cmd: cmd, exit: newExitLatch(), pidfd: -1}
	reaped := newExitLatch()
	go func() { reaped.set(o.reapRunc(t)) }()
	abort := func(cause error) (*ociTask, error) {
		_, _ = o.runc(context.Background(), "kill", spec.ID, "KILL")
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		<-reaped.done
		_, _ = o.runc(context.Background(), "delete", "--force", spec.ID)
		return nil, cause
	}
	pid, err := waitPidFile(ctx, pidFile, reaped, func() string {
		s, _ := tailLogs(spec.ID, dir, nil, 5)
		return s
	})
	if err != nil {
		return abort(err)
	}
	o.log.Debug("runc run", "id", spec.ID, "delete_took", tDelete, "bundle_took", tRun.Sub(t0)-tDelete, "pid_took", time.Since(tRun))
	st, err := readProcStat(pid)
	if err != nil {
		return abort(fmt.Errorf("read start time of pid %d: %w", pid, err))
	}
	t.h = Handle{
		ID: spec.ID, Driver: "oci", PID: pid, StartTime: st.StartTime, StartedAt: time.Now().UTC().Round(0),
		Port: port, Endpoint: "127.0.0.1:" + strconv.Itoa(port), Stdout: outputPath,
		Image: img.Digest, Cgroup: memoryCgroup(pid),
	}
	if err := o.store.save(&t.h); err != nil {
		return abort(err)
	}
	go func() {
		<-reaped.done
		o.finish(t, reaped.res)
	}()
	return t, nil
}

// waitPidFile waits until runc has written the container's pid, or runc
// has exited (the start failed: its output says why), or ctx ends.
func waitPidFile(ctx context.Context, path string, reaped *exitLatch, output func() string) (int, error) {
	tick := time.NewTicker(500 * time.Microsecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
				return pid, nil
			}
		}
		select {
		case <-reaped.done:
			return 0, fmt.Errorf("runc run exited with code %d: %s", reaped.res.ExitCode, output())
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
}

// reapRunc waits for the foreground runc, kills what is left of its process
// group, and returns the container's exit (runc exits with its status).
func (o *OCI) reapRunc(t *ociTask) ExitResult {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, t.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	_ = unix.Kill(-t.cmd.Process.Pid, unix.SIGKILL)
	err := t.cmd.Wait()
	r := exitResultOf(t.cmd.ProcessState, err)
	if r.Signal == 0 && r.ExitCode > 128 && r.ExitCode < 128+65 {
		r.Signal = r.ExitCode - 128 // runc's way of saying a signal killed it
	}
	return r
}

// finish records t's exit (an OOM kill read from its cgroup first), deletes
// the runc container and gives the port back.
func (o *OCI) finish(t *ociTask, r ExitResult) {
	if t.h.Cgroup != "" && oomKills(t.h.Cgroup) > 0 {
		r.OOMKilled = true
	}
	if _, err := o.runc(context.Background(), "delete", "--force", t.h.ID); err != nil {
		o.log.Debug("delete container", "id", t.h.ID, "error", err)
	}
	t.exit.set(r)
	r, _ = t.exit.result()
	o.mu.Lock()
	o.ports.release(t.h.Port, t.h.ID)
	o.mu.Unlock()
	o.log.Info("container exited", "id", t.h.ID, "pid", t.h.PID, "exit_code", r.ExitCode,
		"signal", r.Signal, "oom_killed", r.OOMKilled, "err", r.Err)
}

func (o *OCI) capLogs(t *ociTask) {
	logCap{paths: t.h.logs(), max: o.cfg.LogMaxBytes, every: o.cfg.LogCheckInterval,
		collapse: true, warn: func(p string, err error) {
			o.log.Warn("cap container log", "id", t.h.ID, "path", p, "error", err)
		}}.run(t.exit.done, o.closed)
}

func (o *OCI) lookup(id string) (*ociTask, error) {
	o.mu.Lock()
	t, ok := o.tasks[id]
	o.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return t, nil
}

// Wait returns a channel that receives the container's exit (see Driver).
func (o *OCI) Wait(ctx context.Context, id string) (<-chan ExitResult, error) {
	t, err := o.lookup(id)
	if err != nil {
		return nil, err
	}
	return t.exit.wait(ctx), nil
}

// Stop sends SIGTERM to the container's init process (`runc kill`), waits
// up to grace (KillTimeout when 0; none when negative), then SIGKILL, which
// ends every process of its pid namespace; it returns once it has exited.
func (o *OCI) Stop(ctx context.Context, id string, grace time.Duration) error {
	t, err := o.lookup(id)
	if err != nil {
		return err
	}
	if _, done := t.exit.result(); done {
		return nil
	}
	if grace == 0 {
		grace = o.cfg.KillTimeout
	}
	if grace > 0 {
		if _, err := o.runc(ctx, "kill", id, "TERM"); err != nil {
			o.log.Debug("sigterm", "id", id, "error", err) // it may have exited meanwhile
		}
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-t.exit.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", id, ctx.Err())
		case <-timer.C:
		}
		o.log.Warn("container ignored SIGTERM; killing", "id", id, "pid", t.h.PID, "grace", grace)
	}
	if _, err := o.runc(ctx, "kill", id, "KILL"); err != nil {
		if _, done := t.exit.result(); !done {
			o.log.Debug("sigkill", "id", id, "error", err)
		}
	}
	select {
	case <-t.exit.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", id, ctx.Err())
	}
}

// Inspect reports the container's state.
func (o *OCI) Inspect(id string) (Status, error) {
	t, err := o.lookup(id)
	if err != nil {
		return Status{}, err
	}
	s := Status{ID: id, State: StateRunning, PID: t.h.PID, Port: t.h.Port, Endpoint: t.h.Endpoint,
		StartedAt: t.h.StartedAt, Recovered: t.cmd == nil}
	if r, done := t.exit.result(); done {
		s.State, s.Exit = StateExited, &r
	}
	return s, nil
}

// runcState is the part of `runc state` the driver reads.
type runcState struct {
	ID     string `json:"id"`
	Pid    int    `json:"pid"`
	Status string `json:"status"`
}

// Recover re-adopts a container a previous agent left running: `runc state`
// must show it running with the handle's pid, and /proc that pid's start
// time; else ErrNotRunning (a stopped container is deleted).
func (o *OCI) Recover(h *Handle) error {
	if h == nil {
		return fmt.Errorf("%w: nil handle", ErrInvalidSpec)
	}
	if err := validateID(h.ID); err != nil {
		return err
	}
	o.mu.Lock()
	if t, ok := o.tasks[h.ID]; ok {
		if _, done := t.exit.result(); !done {
			o.mu.Unlock()
			if t.h.PID == h.PID {
				return nil
			}
			return fmt.Errorf("recover %s: %w (pid %d)", h.ID, ErrRunning, t.h.PID)
		}
	}
	o.mu.Unlock()
	out, err := o.runc(context.Background(), "state", h.ID)
	if err != nil {
		return fmt.Errorf("recover %s: %w (runc has no such container: %w)", h.ID, ErrNotRunning, err)
	}
	var rs runcState
	if err := json.Unmarshal(out, &rs); err != nil {
		return fmt.Errorf("recover %s: decode runc state: %w", h.ID, err)
	}
	if rs.Status != "running" || rs.Pid != h.PID {
		_, _ = o.runc(context.Background(), "delete", "--force", h.ID)
		return fmt.Errorf("recover %s: %w (runc says %s, pid %d)", h.ID, ErrNotRunning, rs.Status, rs.Pid)
	}
	fd, err := pidfdOpen(h.PID)
	if err != nil {
		fd = -1
	}
	if ok, _, err := alive(h.PID, h.StartTime); err != nil || !ok {
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		return fmt.Errorf("recover %s: %w (pid %d gone or reused)", h.ID, ErrNotRunning, h.PID)
	}
	t := &ociTask{h: *h, exit: newExitLatch(), pidfd: fd}
	o.mu.Lock()
	o.tasks[h.ID] = t
	prev := o.ports.hold(h.Port, h.ID)
	o.mu.Unlock()
	if prev != "" {
		o.log.Warn("re-adopted container's port was held by another", "id", h.ID, "port", h.Port, "other", prev)
	}
	o.log.Info("container re-adopted", "id", h.ID, "pid", h.PID, "port", h.Port)
	go o.watchRecovered(t)
	go o.capLogs(t)
	return nil
}

// watchRecovered waits for a re-adopted container's init process to exit:
// through its pidfd, else by reading /proc every procPollInterval.
func (o *OCI) watchRecovered(t *ociTask) {
	defer func() {
		if t.pidfd >= 0 {
			_ = unix.Close(t.pidfd)
		}
	}()
	for {
		select {
		case <-o.closed:
			return
		default:
		}
		if t.pidfd >= 0 {
			exited, err := pidfdExited(t.pidfd, pidfdPollTimeout)
			if err == nil && !exited {
				continue
			}
			if err != nil {
				_ = unix.Close(t.pidfd)
				t.pidfd = -1
				continue
			}
		} else if ok, _, err := alive(t.h.PID, t.h.StartTime); err != nil || ok {
			time.Sleep(procPollInterval)
			continue
		}
		o.finish(t, unknownExit())
		return
	}
}

// LoadHandles reads every handle persisted under DataDir, for Recover.
func (o *OCI) LoadHandles() ([]*Handle, error) { return o.store.loadAll() }

// Remove forgets an exited container: runc's record of it, its bundle and
// its logs. It returns ErrRunning while it runs.
func (o *OCI) Remove(id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	o.mu.Lock()
	if _, ok := o.starting[id]; ok {
		o.mu.Unlock()
		return fmt.Errorf("remove %s: %w", id, ErrRunning)
	}
	if t, ok := o.tasks[id]; ok {
		if _, done := t.exit.result(); !done {
			o.mu.Unlock()
			return fmt.Errorf("remove %s: %w (pid %d)", id, ErrRunning, t.h.PID)
		}
		delete(o.tasks, id)
		o.ports.release(t.h.Port, id)
	}
	o.mu.Unlock()
	_, _ = o.runc(context.Background(), "delete", "--force", id)
	return o.store.remove(id)
}

// Tail returns the container's last output lines (see Exec.Tail).
func (o *OCI) Tail(id string, lines int) (string, error) {
	if err := validateID(id); err != nil {
		return "", err
	}
	var h *Handle
	if t, err := o.lookup(id); err == nil {
		h = &t.h
	}
	return tailLogs(id, o.store.dir(id), h, lines)
}

// LogFile names the container's output.log (stdout and stderr in the order
// written), running or not, as long as its directory is there.
func (o *OCI) LogFile(id string) (string, error) {
	if err := validateID(id); err != nil {
		return "", err
	}
	if t, err := o.lookup(id); err == nil {
		return t.h.logs()[0], nil
	}
	p := filepath.Join(o.store.dir(id), outputFile)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return p, nil
}

// env is the container's environment: the image's, then the spec's, then
// the driver's own variables, which win.
func (o *OCI) env(spec Spec, img Image, port int) []string {
	m := map[string]string{"PATH": defaultPATH}
	for _, kv := range img.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	maps.Copy(m, spec.Env)
	p := strconv.Itoa(port)
	m["PORT"], m["COEXIST_PORT"] = p, p
	m["COEXIST_CONTAINER_ID"], m["COEXIST_NODE_ID"], m["COEXIST_SERVICES"] = spec.ID, spec.NodeID, spec.Services
	env := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		env = append(env, k+"="+m[k])
	}
	return env
}

// memoryCgroup is the directory of pid's memory cgroup (v1), or of its
// cgroup (v2), or "" when it cannot be read.
func memoryCgroup(pid int) string {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	defer f.Close()
	v2 := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if slices.Contains(strings.Split(parts[1], ","), "memory") {
			return filepath.Join("/sys/fs/cgroup/memory", parts[2])
		}
		if parts[0] == "0" && parts[1] == "" {
			v2 = filepath.Join("/sys/fs/cgroup", parts[2])
		}
	}
	if v2 != "" {
		if _, err := os.Stat(filepath.Join(v2, "memory.events")); err == nil {
			return v2
		}
	}
	return ""
}

// oomKills reads how many processes the kernel OOM-killed in a memory
// cgroup: oom_kill of memory.oom_control (v1) or of memory.events (v2).
func oomKills(dir string) int {
	for _, f := range []string{"memory.oom_control", "memory.events"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n
			}
		}
	}
	return 0
}
