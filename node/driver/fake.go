package driver

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Fake is an in-memory Driver for the agent's unit tests: no process, no
// port, no file. Its outcomes are programmed through the func fields (set
// them before first use) and through Exit; every call is recorded. It is safe
// for concurrent use. It mirrors Exec where a test can tell: ErrRunning for a
// second Start of a running id, idempotent Stop, Wait fan-out, and an unknown
// exit status (-1, ErrExitUnknown) for a re-adopted process.
type Fake struct {
	// StartFunc, when set, decides each Start: an error fails it (nothing
	// runs), otherwise the FakeProcess says how the process behaves.
	StartFunc func(spec Spec) (FakeProcess, error)
	// StopFunc, when set, runs at each Stop of a running process; an error
	// fails the Stop and leaves the process running.
	StopFunc func(id string, grace time.Duration) error
	// RecoverFunc, when set, decides each Recover. By default a handle is
	// re-adopted when the Fake has that very process (same id, pid and
	// start time) still running, as after an agent restart that kept the
	// Fake, and refused with ErrNotRunning otherwise.
	RecoverFunc func(h *Handle) error
	// Now stamps StartedAt and exit times (default time.Now).
	Now func() time.Time

	mu     sync.Mutex
	procs  map[string]*fakeProc
	calls  []FakeCall
	serial int
}

// FakeProcess is how one fake process behaves.
type FakeProcess struct {
	// ExitAfter > 0 makes the process exit by itself after that long (real
	// time) with ExitCode. Tests that need control call Fake.Exit instead.
	ExitAfter time.Duration
	ExitCode  int
	// IgnoreTerm makes Stop end the process with SIGKILL instead of
	// SIGTERM. The fake does not wait out the grace.
	IgnoreTerm bool
	// Output is what Tail returns (its last lines).
	Output string
}

// FakeCall is one recorded call.
type FakeCall struct {
	Op    string // "start", "wait", "stop", "inspect", "recover", "tail", "remove"
	ID    string
	Spec  Spec          // for "start"
	Grace time.Duration // for "stop"
}

type fakeProc struct {
	h         Handle
	p         FakeProcess
	exit      *exitLatch
	timer     *time.Timer
	recovered bool
}

// The fake has every optional ability, like Exec.
var (
	_ Driver    = (*Fake)(nil)
	_ Recoverer = (*Fake)(nil)
	_ LogTailer = (*Fake)(nil)
	_ Remover   = (*Fake)(nil)
)

// NewFake returns an empty Fake; the zero Fake works as well.
func NewFake() *Fake { return &Fake{} }

func (f *Fake) now() time.Time {
	if f.Now != nil {
		return f.Now()
	}
	return time.Now()
}

// record appends a call (and makes the zero Fake usable); callers hold f.mu.
func (f *Fake) record(c FakeCall) {
	if f.procs == nil {
		f.procs = map[string]*fakeProc{}
	}
	f.calls = append(f.calls, c)
}

// Start implements Driver. Pids count up from 1000 and ports from
// DefaultPortMin, so that tests can predict them.
func (f *Fake) Start(ctx context.Context, spec Spec) (*Handle, error) {
	f.mu.Lock()
	f.record(FakeCall{Op: "start", ID: spec.ID, Spec: cloneSpec(spec)})
	f.mu.Unlock()
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var p FakeProcess
	if f.StartFunc != nil {
		var err error
		if p, err = f.StartFunc(spec); err != nil {
			return nil, err
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if old, ok := f.procs[spec.ID]; ok {
		if _, done := old.exit.result(); !done {
			return nil, fmt.Errorf("start %s: %w (pid %d)", spec.ID, ErrRunning, old.h.PID)
		}
	}
	f.serial++
	port := DefaultPortMin + f.serial - 1
	pr := &fakeProc{
		h: Handle{
			ID:        spec.ID,
			PID:       999 + f.serial,
			StartTime: uint64(100000 + f.serial),
			StartedAt: f.now(),
			Port:      port,
			Endpoint:  "127.0.0.1:" + strconv.Itoa(port),
		},
		p:    p,
		exit: newExitLatch(),
	}
	f.procs[spec.ID] = pr
	if p.ExitAfter > 0 {
		pr.timer = time.AfterFunc(p.ExitAfter, func() { f.exitProc(pr, p.ExitCode, 0) })
	}
	h := pr.h
	return &h, nil
}

// exitProc records the exit of pr (a re-adopted one's status is unknown).
func (f *Fake) exitProc(pr *fakeProc, code, sig int) {
	r := ExitResult{ExitCode: code, Signal: sig, At: f.now()}
	if sig != 0 {
		r.ExitCode = 128 + sig
	}
	f.mu.Lock()
	recovered := pr.recovered
	f.mu.Unlock()
	if recovered {
		r = ExitResult{ExitCode: -1, Err: ErrExitUnknown, At: r.At}
	}
	pr.exit.set(r)
}

// Exit makes the running process of id exit now with code, as a crash would.
func (f *Fake) Exit(id string, code int) error {
	f.mu.Lock()
	pr, ok := f.procs[id]
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if pr.timer != nil {
		pr.timer.Stop()
	}
	f.exitProc(pr, code, 0)
	return nil
}

func (f *Fake) lookup(op, id string, grace time.Duration) (*fakeProc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.record(FakeCall{Op: op, ID: id, Grace: grace})
	pr, ok := f.procs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return pr, nil
}

// Wait implements Driver.
func (f *Fake) Wait(ctx context.Context, id string) (<-chan ExitResult, error) {
	pr, err := f.lookup("wait", id, 0)
	if err != nil {
		return nil, err
	}
	return pr.exit.wait(ctx), nil
}

// Stop implements Driver: the process exits at once, by SIGTERM, or by
// SIGKILL when it ignores SIGTERM.
func (f *Fake) Stop(ctx context.Context, id string, grace time.Duration) error {
	pr, err := f.lookup("stop", id, grace)
	if err != nil {
		return err
	}
	if _, done := pr.exit.result(); done {
		return nil
	}
	if f.StopFunc != nil {
		if err := f.StopFunc(id, grace); err != nil {
			return err
		}
	}
	if pr.timer != nil {
		pr.timer.Stop()
	}
	sig := int(unix.SIGTERM)
	if pr.p.IgnoreTerm {
		sig = int(unix.SIGKILL)
	}
	f.exitProc(pr, 0, sig)
	return nil
}

// Inspect implements Driver.
func (f *Fake) Inspect(id string) (Status, error) {
	pr, err := f.lookup("inspect", id, 0)
	if err != nil {
		return Status{}, err
	}
	f.mu.Lock()
	s := Status{
		ID: id, State: StateRunning, PID: pr.h.PID, Port: pr.h.Port, Endpoint: pr.h.Endpoint,
		StartedAt: pr.h.StartedAt, Recovered: pr.recovered,
	}
	f.mu.Unlock()
	if r, done := pr.exit.result(); done {
		s.State = StateExited
		s.Exit = &r
	}
	return s, nil
}

// Recover implements Recoverer (see RecoverFunc).
func (f *Fake) Recover(h *Handle) error {
	f.mu.Lock()
	id := ""
	if h != nil {
		id = h.ID
	}
	f.record(FakeCall{Op: "recover", ID: id})
	f.mu.Unlock()
	if h == nil {
		return fmt.Errorf("%w: nil handle", ErrInvalidSpec)
	}
	if f.RecoverFunc != nil {
		if err := f.RecoverFunc(h); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	pr, ok := f.procs[h.ID]
	if ok {
		if _, done := pr.exit.result(); !done && pr.h.PID == h.PID && pr.h.StartTime == h.StartTime {
			pr.recovered = true
			return nil
		}
	}
	if f.RecoverFunc == nil {
		return fmt.Errorf("recover %s: %w (pid %d gone or reused)", h.ID, ErrNotRunning, h.PID)
	}
	// RecoverFunc accepted a process the fake never started: adopt it.
	f.procs[h.ID] = &fakeProc{h: *h, exit: newExitLatch(), recovered: true}
	return nil
}

// Tail implements LogTailer: the last lines of the process's Output.
func (f *Fake) Tail(id string, lines int) (string, error) {
	pr, err := f.lookup("tail", id, 0)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	out := pr.p.Output
	f.mu.Unlock()
	return lastLines(out, lines), nil
}

// SetOutput sets what Tail returns for id.
func (f *Fake) SetOutput(id, output string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr, ok := f.procs[id]
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	pr.p.Output = output
	return nil
}

// Remove implements Remover.
func (f *Fake) Remove(id string) error {
	pr, err := f.lookup("remove", id, 0)
	if err != nil {
		return nil // unknown: nothing to remove
	}
	if _, done := pr.exit.result(); !done {
		return fmt.Errorf("remove %s: %w", id, ErrRunning)
	}
	f.mu.Lock()
	delete(f.procs, id)
	f.mu.Unlock()
	return nil
}

// LoadHandles returns the handles of every process the fake knows, sorted by
// id, like Exec.LoadHandles after an agent restart.
func (f *Fake) LoadHandles() ([]*Handle, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var hs []*Handle
	for _, id := range slices.Sorted(maps.Keys(f.procs)) {
		h := f.procs[id].h
		hs = append(hs, &h)
	}
	return hs, nil
}

// Calls returns a copy of the calls recorded so far, in order.
func (f *Fake) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// CallsOf returns the ids passed to the recorded calls of op, in order.
func (f *Fake) CallsOf(op string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for _, c := range f.calls {
		if c.Op == op {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// Running returns the ids of the processes running now, sorted.
func (f *Fake) Running() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, pr := range f.procs {
		if _, done := pr.exit.result(); !done {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func cloneSpec(s Spec) Spec {
	s.Args = slices.Clone(s.Args)
	s.Env = maps.Clone(s.Env)
	return s
}

// lastLines returns the last n lines of s, without a final newline.
func lastLines(s string, n int) string {
	s = strings.TrimSuffix(s, "\n")
	if n <= 0 || s == "" {
		return ""
	}
	i := len(s)
	for k := 0; k < n; k++ {
		j := strings.LastIndexByte(s[:i], '\n')
		if j < 0 {
			return s
		}
		i = j
	}
	return s[i+1:]
}
