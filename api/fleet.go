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
	_ = Watch(ctx, wc, fetch, func(v T, meta *QueryMeta) {
		if onChange != nil {
			onChange(v, meta)
		}
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
