package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// ExecConfig configures the exec driver.
type ExecConfig struct {
	// DataDir is the agent's data directory; containers live under
	// DataDir/containers/<id>/. Required.
	DataDir string
	// PortMin and PortMax bound the ports given to containers (default
	// 21000-21999: below the kernel's ephemeral range, so that outgoing
	// connections never take them).
	PortMin, PortMax int
	// Ports, when set, is a pool shared with the agent's other drivers;
	// PortMin and PortMax are then ignored.
	Ports *Ports
	// KillTimeout is how long Stop waits after SIGTERM before SIGKILL when
	// it is given no grace (default 5s).
	KillTimeout time.Duration
	// LogMaxBytes caps a container's output.log (default 1 MiB, at least
	// 4 KiB). See logs.go for how.
	LogMaxBytes int64
	// LogCheckInterval is how often the log sizes are checked (default 1s).
	LogCheckInterval time.Duration
	// Logger receives the driver's own log lines: starts, exits, and
	// warnings such as a container that ignored SIGTERM. The agent passes
	// its own; nil discards them.
	Logger hclog.Logger
}

// Defaults of ExecConfig.
const (
	DefaultPortMin          = 21000
	DefaultPortMax          = 21999
	DefaultKillTimeout      = 5 * time.Second
	DefaultLogMaxBytes      = 1 << 20
	DefaultLogCheckInterval = time.Second
	minLogMaxBytes          = 4 << 10
)

// DefaultExecConfig returns the defaults; DataDir is left for the caller.
func DefaultExecConfig() ExecConfig {
	return ExecConfig{
		PortMin:          DefaultPortMin,
		PortMax:          DefaultPortMax,
		KillTimeout:      DefaultKillTimeout,
		LogMaxBytes:      DefaultLogMaxBytes,
		LogCheckInterval: DefaultLogCheckInterval,
	}
}

// withDefaults fills the zero fields of c and checks the result.
func (c ExecConfig) withDefaults() (ExecConfig, error) {
	if c.DataDir == "" {
		return c, errors.New("exec driver: data dir is required")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("exec driver: data dir: %w", err)
	}
	c.DataDir = abs
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = DefaultPortMin, DefaultPortMax
	}
	if c.PortMin < 1 || c.PortMax > 65535 || c.PortMin > c.PortMax {
		return c, fmt.Errorf("exec driver: port range %d-%d: want 1 <= min <= max <= 65535", c.PortMin, c.PortMax)
	}
	if c.KillTimeout == 0 {
		c.KillTimeout = DefaultKillTimeout
	}
	if c.KillTimeout < 0 {
		return c, fmt.Errorf("exec driver: kill timeout %s: must not be negative", c.KillTimeout)
	}
	if c.LogMaxBytes == 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.LogMaxBytes < minLogMaxBytes {
		return c, fmt.Errorf("exec driver: log max bytes %d: want at least %d", c.LogMaxBytes, minLogMaxBytes)
	}
	if c.LogCheckInterval == 0 {
		c.LogCheckInterval = DefaultLogCheckInterval
	}
	if c.LogCheckInterval < 0 {
		return c, fmt.Errorf("exec driver: log check interval %s: must not be negative", c.LogCheckInterval)
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c, nil
}

// Exec runs each container as a child process of the agent, in its own
// process group, listening on a port of the configured range on 127.0.0.1.
// The process outlives the agent; a new agent re-adopts it with Recover.
type Exec struct {
	cfg   ExecConfig
	log   hclog.Logger
	store store

	mu       sync.Mutex
	tasks    map[string]*task    // by container id; exited tasks stay until replaced or removed
	starting map[string]struct{} // ids between the check and the registration in Start
	ports    *Ports

	closed    chan struct{}
	closeOnce sync.Once

	// Test switches: watch re-adopted processes by /proc polling only;
	// cap logs by copying only.
	noPidfd    bool
	noCollapse bool
}

// The exec driver has every optional ability.
var (
	_ Driver    = (*Exec)(nil)
	_ Recoverer = (*Exec)(nil)
	_ LogTailer = (*Exec)(nil)
	_ Remover   = (*Exec)(nil)
	_ LogFiler  = (*Exec)(nil)
)

// NewExec checks cfg, fills in its defaults and creates DataDir/containers.
func NewExec(cfg ExecConfig) (*Exec, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	st, err := newStore(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("exec driver: %w", err)
	}
	return &Exec{
		cfg:      cfg,
		log:      cfg.Logger,
		store:    st,
		tasks:    map[string]*task{},
		starting: map[string]struct{}{},
		ports:    portsOf(cfg.Ports, cfg.PortMin, cfg.PortMax),
		closed:   make(chan struct{}),
	}, nil
}

// Close stops the driver's background work (log checks, watching re-adopted
// processes). It does not stop containers: they are meant to outlive the
// agent. The driver still reaps its own children, so that none is left a
// zombie.
func (e *Exec) Close() error {
	e.closeOnce.Do(func() { close(e.closed) })
	return nil
}

func (e *Exec) isClosed() bool {
	select {
	case <-e.closed:
		return true
	default:
		return false
	}
}

// Start runs spec as a child process and persists its Handle. ctx bounds
// only the start: the process is not tied to it.
func (e *Exec) Start(ctx context.Context, spec Spec) (*Handle, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e.isClosed() {
		return nil, ErrClosed
	}
	if spec.Image != "" || spec.Resources != (Resources{}) {
		return nil, fmt.Errorf("%w: image and resources are for the oci driver; exec runs a command with no limits", ErrInvalidSpec)
	}
	path, err := resolveCommand(spec.Command)
	if err != nil {
		return nil, err
	}

	e.mu.Lock()
	if t, ok := e.tasks[spec.ID]; ok {
		if _, done := t.exit.result(); !done {
			e.mu.Unlock()
			return nil, fmt.Errorf("start %s: %w (pid %d)", spec.ID, ErrRunning, t.h.PID)
		}
	}
	if _, ok := e.starting[spec.ID]; ok {
		e.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w (starting)", spec.ID, ErrRunning)
	}
	port, err := e.ports.alloc(spec.ID)
	if err != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	e.starting[spec.ID] = struct{}{}
	e.mu.Unlock()

	t, err := e.startProcess(spec, path, port)

	e.mu.Lock()
	delete(e.starting, spec.ID)
	if err != nil {
		e.ports.release(port, spec.ID)
		e.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", spec.ID, err)
	}
	e.tasks[spec.ID] = t
	e.mu.Unlock()

	e.log.Info("container started", "id", spec.ID, "pid", t.h.PID, "port", port, "command", path)
	go e.superviseChild(t)
	go e.capLogs(t)
	h := t.h
	return &h, nil
}

// startProcess forks the container and persists its handle; it leaves no
// process behind when it fails.
func (e *Exec) startProcess(spec Spec, path string, port int) (*task, error) {
	dir := e.store.dir(spec.ID)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create container dir: %w", err)
	}
	outputPath := filepath.Join(dir, outputFile)
	output, err := openLog(outputPath)
	if err != nil {
		return nil, err
	}
	defer output.Close() // the child has its own descriptors

	// Not exec.CommandContext: the process must not die with the agent's
	// context. Files rather than pipes for its output, its own process
	// group, and no Pdeathsig, so that it outlives the agent. Stdout and
	// stderr are one file, so that its lines stay in the order they were
	// written (see logs.go).
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{spec.Command}, spec.Args...),
		Env:         e.env(spec, port),
		Dir:         dir,
		Stdout:      output,
		Stderr:      output,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("exec %s: %w", path, err)
	}
	pid := cmd.Process.Pid
	abort := func(cause error) (*task, error) {
		_ = unix.Kill(-pid, unix.SIGKILL)
		_ = cmd.Wait()
		return nil, cause
	}
	// Not reaped yet, so its /proc entry exists even if it already exited.
	st, err := readProcStat(pid)
	if err != nil {
		return abort(fmt.Errorf("read start time of pid %d: %w", pid, err))
	}
	h := Handle{
		ID:        spec.ID,
		PID:       pid,
		StartTime: st.StartTime,
		StartedAt: time.Now().UTC().Round(0), // as it reads back from JSON
		Port:      port,
		Endpoint:  "127.0.0.1:" + strconv.Itoa(port),
		Stdout:    outputPath,
		Stderr:    outputPath,
	}
	// A process whose handle is not on disk could not be re-adopted after
	// an agent restart: rather than leak it, do not run it at all.
	if err := e.store.save(&h); err != nil {
		return abort(err)
	}
	return &task{h: h, cmd: cmd, exit: newExitLatch(), pidfd: -1}, nil
}

// openLog opens a container log for the child to append to. O_APPEND is what
// lets the driver shrink the file under the child's feet (see logs.go).
func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return f, nil
}

// resolveCommand returns the absolute path of the program to run.
func resolveCommand(command string) (string, error) {
	path := command
	if !filepath.IsAbs(command) {
		p, err := exec.LookPath(command)
		if err != nil {
			return "", fmt.Errorf("%w: command: %w", ErrInvalidSpec, err)
		}
		if path, err = filepath.Abs(p); err != nil {
			return "", fmt.Errorf("%w: command: %w", ErrInvalidSpec, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("%w: command: %w", ErrInvalidSpec, err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%w: command: %s is not an executable file", ErrInvalidSpec, path)
	}
	return path, nil
}

// defaultPATH is given to containers when the agent itself has no PATH.
const defaultPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// env is the container's environment: a minimal one from the agent (PATH,
// HOME), then the spec's, then the driver's own variables, which win.
// Nothing else of the agent's environment is passed on, so that the agent's
// secrets (COEXIST_TOKEN, COEXIST_MANAGEMENT_TOKEN) never reach a container.
func (e *Exec) env(spec Spec, port int) []string {
	m := map[string]string{"PATH": defaultPATH}
	for _, k := range []string{"PATH", "HOME"} {
		if v, ok := os.LookupEnv(k); ok {
			m[k] = v
		}
	}
	maps.Copy(m, spec.Env)
	p := strconv.Itoa(port)
	m["PORT"] = p
	m["COEXIST_PORT"] = p
	m["COEXIST_CONTAINER_ID"] = spec.ID
	m["COEXIST_NODE_ID"] = spec.NodeID
	m["COEXIST_SERVICES"] = spec.Services
	env := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		env = append(env, k+"="+m[k])
	}
	return env
}

// superviseChild reaps the driver's own child and records its exit.
func (e *Exec) superviseChild(t *task) {
	e.finish(t, t.reapChild())
}

// finish records the exit of t and gives its port back.
func (e *Exec) finish(t *task, r ExitResult) {
	t.exit.set(r)
	r, _ = t.exit.result() // another path may have recorded it first
	e.mu.Lock()
	e.ports.release(t.h.Port, t.h.ID)
	e.mu.Unlock()
	e.log.Info("container exited", "id", t.h.ID, "pid", t.h.PID,
		"exit_code", r.ExitCode, "signal", r.Signal, "err", r.Err)
}

// capLogs keeps t's log files under LogMaxBytes while t runs, and once more
// after it exits.
func (e *Exec) capLogs(t *task) {
	logCap{paths: t.h.logs(), max: e.cfg.LogMaxBytes, every: e.cfg.LogCheckInterval,
		collapse: !e.noCollapse, warn: func(p string, err error) {
			e.log.Warn("cap container log", "id", t.h.ID, "path", p, "err", err)
		}}.run(t.exit.done, e.closed)
}

// lookup returns the task of id, or ErrNotFound.
func (e *Exec) lookup(id string) (*task, error) {
	e.mu.Lock()
	t, ok := e.tasks[id]
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return t, nil
}

// Wait returns a channel that receives the container's exit (see Driver).
func (e *Exec) Wait(ctx context.Context, id string) (<-chan ExitResult, error) {
	t, err := e.lookup(id)
	if err != nil {
		return nil, err
	}
	return t.exit.wait(ctx), nil
}

// Stop sends SIGTERM to the container's process group, waits up to grace
// (KillTimeout when grace is 0; no wait when grace is negative), then sends
// SIGKILL to the group, and returns once the process has exited or ctx ends.
func (e *Exec) Stop(ctx context.Context, id string, grace time.Duration) error {
	t, err := e.lookup(id)
	if err != nil {
		return err
	}
	if _, done := t.exit.result(); done {
		return nil
	}
	if grace == 0 {
		grace = e.cfg.KillTimeout
	}
	if grace > 0 {
		if err := t.signal(unix.SIGTERM); err != nil && !errors.Is(err, errGone) {
			return fmt.Errorf("stop %s: sigterm: %w", id, err)
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
		e.log.Warn("container ignored SIGTERM; killing", "id", id, "pid", t.h.PID, "grace", grace)
	}
	if err := t.signal(unix.SIGKILL); err != nil && !errors.Is(err, errGone) {
		return fmt.Errorf("stop %s: sigkill: %w", id, err)
	}
	select {
	case <-t.exit.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop %s: %w", id, ctx.Err())
	}
}

// Inspect reports the container's state. For a re-adopted process it reads
// /proc (and its pidfd) now, so that a pid reused by another process is never
// reported as the container.
func (e *Exec) Inspect(id string) (Status, error) {
	t, err := e.lookup(id)
	if err != nil {
		return Status{}, err
	}
	known := t.refresh()
	s := Status{
		ID:        id,
		State:     StateRunning,
		PID:       t.h.PID,
		Port:      t.h.Port,
		Endpoint:  t.h.Endpoint,
		StartedAt: t.h.StartedAt,
		Recovered: t.recovered(),
	}
	if r, done := t.exit.result(); done {
		s.State = StateExited
		s.Exit = &r
	} else if !known {
		s.State = StateUnknown
	}
	return s, nil
}

// Recover re-adopts the process of h, left running by a previous agent: it
// checks that /proc/<pid>/stat still shows h.StartTime (else ErrNotRunning:
// the process is gone or its pid was reused), pins it with a pidfd where the
// kernel has them, holds its port and watches it until it exits. Recovering
// the same handle twice is not an error.
func (e *Exec) Recover(h *Handle) error {
	if h == nil {
		return fmt.Errorf("%w: nil handle", ErrInvalidSpec)
	}
	if err := validateID(h.ID); err != nil {
		return err
	}
	if h.PID <= 1 || h.StartTime == 0 {
		return fmt.Errorf("%w: handle %s: pid %d, start time %d", ErrInvalidSpec, h.ID, h.PID, h.StartTime)
	}
	if e.isClosed() {
		return ErrClosed
	}
	e.mu.Lock()
	already, err := e.adoptedLocked(h)
	e.mu.Unlock()
	if already || err != nil {
		return err
	}

	ok, _, err := alive(h.PID, h.StartTime)
	if err != nil {
		return fmt.Errorf("recover %s: read /proc: %w", h.ID, err)
	}
	if !ok {
		return fmt.Errorf("recover %s: %w (pid %d gone or reused)", h.ID, ErrNotRunning, h.PID)
	}
	fd := -1
	if !e.noPidfd {
		if fd, err = pidfdOpen(h.PID); err != nil {
			e.log.Debug("no pidfd; watching /proc instead", "id", h.ID, "pid", h.PID, "err", err)
			fd = -1
		}
	}
	if fd >= 0 {
		// The pid may have changed hands between the check and pidfd_open;
		// now that the pidfd pins whichever process it is, check again.
		if ok, _, err = alive(h.PID, h.StartTime); err != nil || !ok {
			_ = unix.Close(fd)
			return fmt.Errorf("recover %s: %w (pid %d gone or reused)", h.ID, ErrNotRunning, h.PID)
		}
	}
	t := &task{h: *h, exit: newExitLatch(), pidfd: fd}

	e.mu.Lock()
	if already, err := e.adoptedLocked(h); already || err != nil { // a concurrent Recover won
		e.mu.Unlock()
		if fd >= 0 {
			_ = unix.Close(fd)
		}
		return err
	}
	e.tasks[h.ID] = t
	prev := e.ports.hold(h.Port, h.ID)
	e.mu.Unlock()
	if prev != "" {
		e.log.Warn("re-adopted container's port was held by another", "id", h.ID, "port", h.Port, "other", prev)
	}

	e.log.Info("container re-adopted", "id", h.ID, "pid", h.PID, "port", h.Port, "pidfd", fd >= 0)
	go func() {
		t.watchRecovered(e.closed, func(err error) {
			e.log.Warn("watch pidfd; falling back to /proc", "id", h.ID, "err", err)
		})
		if _, done := t.exit.result(); done {
			e.finish(t, unknownExit())
		}
	}()
	go e.capLogs(t)
	return nil
}

// adoptedLocked tells Recover what is tracked under h's id already: h's very
// process, running (already true: nothing to do), or another live process
// (ErrRunning). Callers hold e.mu.
func (e *Exec) adoptedLocked(h *Handle) (already bool, err error) {
	if _, ok := e.starting[h.ID]; ok {
		return false, fmt.Errorf("recover %s: %w (starting)", h.ID, ErrRunning)
	}
	t, ok := e.tasks[h.ID]
	if !ok {
		return false, nil
	}
	if _, done := t.exit.result(); done {
		return false, nil
	}
	if t.h.PID != h.PID || t.h.StartTime != h.StartTime {
		return false, fmt.Errorf("recover %s: %w (pid %d)", h.ID, ErrRunning, t.h.PID)
	}
	return true, nil
}

// LoadHandles reads every handle persisted under DataDir, sorted by id, for
// an agent that restarts: it passes each to Recover, and Removes the ones
// that are not running any more. A handle file that cannot be read is
// reported in the error; the others are still returned.
func (e *Exec) LoadHandles() ([]*Handle, error) {
	return e.store.loadAll()
}

// Remove forgets an exited container: its handle.json and its logs. It
// returns ErrRunning while the container runs; removing an unknown container
// is not an error.
func (e *Exec) Remove(id string) error {
	if err := validateID(id); err != nil {
		return err
	}
	e.mu.Lock()
	if _, ok := e.starting[id]; ok {
		e.mu.Unlock()
		return fmt.Errorf("remove %s: %w", id, ErrRunning)
	}
	if t, ok := e.tasks[id]; ok {
		if _, done := t.exit.result(); !done {
			e.mu.Unlock()
			return fmt.Errorf("remove %s: %w (pid %d)", id, ErrRunning, t.h.PID)
		}
		delete(e.tasks, id)
		e.ports.release(t.h.Port, id)
	}
	e.mu.Unlock()
	return e.store.remove(id)
}

// LogFile returns the path of the container's output.log (of its
// stdout.log for a container started by an older agent, which kept two).
func (e *Exec) LogFile(id string) (string, error) {
	paths, err := e.logPaths(id)
	if err != nil {
		return "", err
	}
	return paths[0], nil
}

// logPaths returns the log files of a container, running or not, as long
// as its directory is there: one, or two for an older agent's container.
func (e *Exec) logPaths(id string) ([]string, error) {
	if err := validateID(id); err != nil {
		return nil, err
	}
	var paths []string
	if t, err := e.lookup(id); err == nil {
		paths = t.h.logs()
	} else if _, err := os.Stat(e.store.dir(id)); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	} else if h, err := e.store.load(id); err == nil {
		paths = h.logs()
	}
	if len(paths) == 0 {
		paths = []string{filepath.Join(e.store.dir(id), outputFile)}
	}
	return paths, nil
}

// Tail returns the last lines the container wrote, stdout and stderr in the
// order they were written, joined by newlines. It reads only the end of the
// file. It also works for a container whose process is gone, as long as its
// directory is there. For a container started by an older agent, with
// separate stdout.log and stderr.log, it returns up to lines of each,
// stdout's first.
func (e *Exec) Tail(id string, lines int) (string, error) {
	paths, err := e.logPaths(id)
	if err != nil {
		return "", err
	}
	return tailPaths(id, paths, lines)
}
