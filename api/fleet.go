package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// FleetTable names one of the three registry tables a router is built
// from: what the agent's gateway and the SDK watch.
type FleetTable int

// The tables, in the order WatchFleet starts their watches.
const (
	FleetServices FleetTable = iota
	FleetContainers
	FleetNodes
	NumFleetTables
)

var fleetTableNames = [NumFleetTables]string{"services", "containers", "nodes"}

func (t FleetTable) String() string {
	if t >= 0 && t < NumFleetTables {
		return fleetTableNames[t]
	}
	return fmt.Sprintf("table(%d)", int(t))
}

// ErrNoLeader means a registry server answered a watch without knowing a
// leader; WatchFleet ignores the answer.
var ErrNoLeader = errors.New("registry server knows no leader")

// FleetConfig configures WatchFleet. Every callback of a table runs on that
// table's own goroutine.
type FleetConfig struct {
	// Watch is the blocking-query loop of each table; its OnError is
	// replaced by OnError below.
	Watch WatchConfig
	// QueryTimeout bounds each query, blocking wait included; 0 means
	// none.
	QueryTimeout time.Duration
	// Prepare, when set, completes each query before it is sent: who asks,
	// for the registry's census.
	Prepare func(FleetTable, *QueryOptions)

	// OnServices, OnContainers and OnNodes are told each answer whose
	// index moved (the first always).
	OnServices   func([]Service, *QueryMeta)
	OnContainers func([]Container, *QueryMeta)
	OnNodes      func([]Node, *QueryMeta)
	// OnAnswer, when set, is told of every answer taken, changed or not,
	// before the table's own callback.
	OnAnswer func(FleetTable, *QueryMeta)
	// OnError, when set, is told of each failed query, an ignored answer
	// (ErrNoLeader) included, and of the pause that follows.
	OnError func(FleetTable, error, time.Duration)
	// Ask, when set, gives a channel for each query of a table: closing it
	// ends that query and sends it again at once, prepared afresh, with the
	// same index. An SDK client that starts calling a new service uses it,
	// so that the registry's census learns of the call (Coexist-Calls)
	// without waiting for a blocking query to end (docs/design.md §5).
	Ask func(FleetTable) <-chan struct{}

	gate *fleetGate
}

// maxFleetHold bounds how long the changes of tables that reached the
// registry again are held while another table's watch still fails.
const maxFleetHold = 5 * time.Second

// fleetGate keeps the three tables a router is built from consistent after
// an outage. While the watch of one table fails, the changes that the
// watches of the others bring are held, not handed on, and they are handed
// on together once every table has answered again (or maxFleetHold has
// passed): a router built from services of after an outage and containers of
// before it sees versions with no running container, or the old version
// retired and the new one not yet running, which no registry state ever
// was (found by the host test bed). And when one table's watch reaches the
// registry again, the others stop backing off and ask at once.
type fleetGate struct {
	now     func() time.Time
	mu      sync.Mutex
	failing [NumFleetTables]bool
	held    [NumFleetTables]func()
	since   time.Time // when the oldest held change was held
	wake    chan struct{}
}

func newFleetGate(now func() time.Time) *fleetGate {
	return &fleetGate{now: now, wake: make(chan struct{})}
}

// wakeCh is the channel that ends the pauses of failing watches.
func (g *fleetGate) wakeCh() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.wake
}

// failed records that table's watch failed; it returns the held changes to
// hand on when they have been held too long.
func (g *fleetGate) failed(table FleetTable) []func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failing[table] = true
	if !g.since.IsZero() && g.now().Sub(g.since) >= maxFleetHold {
		return g.takeLocked()
	}
	return nil
}

// answered records that table's watch reached the registry; it wakes the
// failing watches when table was failing, and returns the held changes to
// hand on when no table fails any more.
func (g *fleetGate) answered(table FleetTable) []func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failing[table] {
		g.failing[table] = false
		close(g.wake)
		g.wake = make(chan struct{})
	}
	if !g.anyFailingLocked() {
		return g.takeLocked()
	}
	return nil
}

// change hands on table's change, or holds it while another table fails
// (replacing a change of the same table held before). It returns what to
// hand on now, in table order.
func (g *fleetGate) change(table FleetTable, deliver func()) []func() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.anyFailingLocked() && (g.since.IsZero() || g.now().Sub(g.since) < maxFleetHold) {
		if g.since.IsZero() {
			g.since = g.now()
		}
		g.held[table] = deliver
		return nil
	}
	g.held[table] = deliver
	return g.takeLocked()
}

func (g *fleetGate) anyFailingLocked() bool {
	for _, f := range g.failing {
		if f {
			return true
		}
	}
	return false
}

func (g *fleetGate) takeLocked() []func() {
	var out []func()
	for i, d := range g.held {
		if d != nil {
			out = append(out, d)
			g.held[i] = nil
		}
	}
	g.since = time.Time{}
	return out
}

func runAll(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// WatchFleet watches services, containers and nodes, each in a
// blocking-query loop of its own (Watch), until ctx ends; it returns when
// the three loops have.
//
// An answer from a server that knows no leader is taken as a failed query
// (ErrNoLeader): such a server may be one that just restarted and has not
// replayed its log, and acting on its empty tables would stop every
// container and strand every caller. After a failed query, the next one asks
// without blocking, so that a registry that comes back is seen at once.
func WatchFleet(ctx context.Context, c *Client, cfg FleetConfig) {
	g := newFleetGate(time.Now)
	cfg.gate = g
	var wg sync.WaitGroup
	wg.Add(int(NumFleetTables))
	go func() {
		defer wg.Done()
		watchTable(ctx, cfg, FleetServices, func(ctx context.Context, q *QueryOptions) ([]Service, *QueryMeta, error) {
			return c.Services().List(ctx, q)
		}, cfg.OnServices)
	}()
	go func() {
		defer wg.Done()
		watchTable(ctx, cfg, FleetContainers, func(ctx context.Context, q *QueryOptions) ([]Container, *QueryMeta, error) {
			return c.Containers().List(ctx, "", q)
		}, cfg.OnContainers)
	}()
	go func() {
		defer wg.Done()
		watchTable(ctx, cfg, FleetNodes, func(ctx context.Context, q *QueryOptions) ([]Node, *QueryMeta, error) {
			return c.Nodes().List(ctx, q)
		}, cfg.OnNodes)
	}()
	wg.Wait()
}

// watchTable is the loop of one table of WatchFleet.
func watchTable[T any](ctx context.Context, cfg FleetConfig, table FleetTable, list func(context.Context, *QueryOptions) (T, *QueryMeta, error), onChange func(T, *QueryMeta)) {
	failing := false // only this goroutine reads and writes it
	fetch := func(ctx context.Context, q *QueryOptions) (T, *QueryMeta, error) {
		if failing {
			// Ask without blocking: the answer says at once whether the
			// registry is back, and Watch still compares its index with
			// the one it holds.
			q.WaitIndex = 0
		}
		v, meta, err := askOnce(ctx, cfg, table, q, list)
		if err == nil && !meta.KnownLeader {
			var zero T
			v, meta, err = zero, nil, fmt.Errorf("%w (answer at index %d ignored)", ErrNoLeader, meta.LastIndex)
		}
		failing = err != nil
		if cfg.gate != nil {
			if err != nil {
				runAll(cfg.gate.failed(table))
			} else {
				runAll(cfg.gate.answered(table))
			}
		}
		if err == nil && cfg.OnAnswer != nil {
			cfg.OnAnswer(table, meta)
		}
		return v, meta, err
	}
	wc := cfg.Watch
	wc.OnError = nil
	if cfg.OnError != nil {
		wc.OnError = func(err error, pause time.Duration) { cfg.OnError(table, err, pause) }
	}
	if cfg.gate != nil {
		wc.Wake = cfg.gate.wakeCh
	}
	_ = Watch(ctx, wc, fetch, func(v T, meta *QueryMeta) {
		if onChange == nil {
			return
		}
		deliver := func() { onChange(v, meta) }
		if cfg.gate == nil {
			deliver()
			return
		}
		runAll(cfg.gate.change(table, deliver))
	})
}

// askOnce sends one query of a table, again (with the same index) each time
// cfg.Ask's channel closes while it waits.
func askOnce[T any](ctx context.Context, cfg FleetConfig, table FleetTable, q *QueryOptions, list func(context.Context, *QueryOptions) (T, *QueryMeta, error)) (T, *QueryMeta, error) {
	for {
		if cfg.Prepare != nil {
			cfg.Prepare(table, q)
		}
		qctx, cancel := context.WithCancel(ctx)
		if cfg.QueryTimeout > 0 {
			qctx, cancel = context.WithTimeout(ctx, cfg.QueryTimeout)
		}
		var asked chan struct{}
		if cfg.Ask != nil {
			ask := cfg.Ask(table)
			asked = make(chan struct{})
			go func() {
				select {
				case <-ask:
					close(asked)
					cancel()
				case <-qctx.Done():
				}
			}()
		}
		v, meta, err := list(qctx, q)
		cancel()
		if asked != nil {
			select {
			case <-asked:
				if ctx.Err() == nil {
					continue
				}
			default:
			}
		}
		return v, meta, err
	}
}
