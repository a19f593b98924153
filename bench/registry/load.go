package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// writer is what the write and fan-out phases need of a system.
type writer interface {
	name() string
	// Write makes one distinct write and answers its index (coexist) or
	// revision (etcd), once acknowledged.
	Write(ctx context.Context, phase string, w, i int) (uint64, error)
	// FanoutWrite makes the write of one fan-out round.
	FanoutWrite(ctx context.Context, round int) (uint64, error)
	// retries counts the writes retried and the leader changes seen.
	retries() *retryStats
	// processes are the system's server processes.
	processes() []*proc
}

// retryStats counts write attempts that failed and were retried.
type retryStats struct {
	count         atomic.Int64
	leaderChanges atomic.Int64
	firstErr      atomic.Pointer[string]
}

func (r *retryStats) note(err error) {
	r.count.Add(1)
	s := err.Error()
	r.firstErr.CompareAndSwap(nil, &s)
}

// since describes the retries after a snapshot (count, changes) taken
// earlier, or "" when there were none.
func (r *retryStats) since(count, changes int64) string {
	n, l := r.count.Load()-count, r.leaderChanges.Load()-changes
	if n == 0 && l == 0 {
		return ""
	}
	first := "?"
	if p := r.firstErr.Load(); p != nil {
		first = *p
	}
	return fmt.Sprintf("%d write attempts failed and were retried, %d leader changes (first failure of the run: %s)", n, l, first)
}

func (r *retryStats) snapshot() (int64, int64) { return r.count.Load(), r.leaderChanges.Load() }

// fanoutKeys is what each fan-out round writes: "versions", a new version
// of one service (bench-fanout 1.0.<round>), or "services", a new service
// (bench-fanout-<round> 1.0.0).
var fanoutKeys = "versions"

func fanoutKey(round int) (service, version string) {
	if fanoutKeys == "services" {
		return fmt.Sprintf("bench-fanout-%d", round), "1.0.0"
	}
	return "bench-fanout", fmt.Sprintf("1.0.%d", round)
}

// writeResult is one write phase of one system.
type writeResult struct {
	system, phase string
	writers       int
	ops           int
	elapsed       time.Duration
	lat           []time.Duration // sorted
	errs          int
	firstErr      string
	retries       string
	cpu           time.Duration // CPU time of the servers in the measured window
}

// cpuPerWrite is the servers' CPU time per write.
func (r *writeResult) cpuPerWrite() time.Duration {
	if r.ops == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.ops)
}

func (r *writeResult) perSec() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// percentile of sorted durations; 0 when empty.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// runWrites runs n writers for warmup+dur, each making distinct writes back
// to back. Only writes that start after the warm-up and end before the end
// of the phase are counted.
func runWrites(ctx context.Context, sys writer, phase string, n int, warmup, dur time.Duration) (*writeResult, error) {
	start := time.Now()
	measureFrom := start.Add(warmup)
	end := measureFrom.Add(dur)
	pctx, cancel := context.WithDeadline(ctx, end.Add(30*time.Second))
	defer cancel()

	rc, rl := sys.retries().snapshot()
	// The servers' CPU time at the start and the end of the measured window.
	cpuAt := make(chan time.Duration, 2)
	go func() {
		for _, t := range []time.Time{measureFrom, end} {
			select {
			case <-time.After(time.Until(t)):
				cpuAt <- cpuTime(sys.processes())
			case <-pctx.Done():
				return
			}
		}
	}()
	lats := make([][]time.Duration, n)
	var errs atomic.Int64
	var firstErr atomic.Pointer[string]
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, 4096)
			for i := 0; ; i++ {
				t0 := time.Now()
				if !t0.Before(end) || pctx.Err() != nil {
					break
				}
				rctx, rcancel := context.WithTimeout(pctx, 10*time.Second)
				_, err := sys.Write(rctx, phase, w, i)
				rcancel()
				t1 := time.Now()
				if err != nil {
					if errs.Add(1) == 1 {
						s := err.Error()
						firstErr.Store(&s)
					}
					if pctx.Err() == nil {
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				if !t0.Before(measureFrom) && !t1.After(end) {
					mine = append(mine, t1.Sub(t0))
				}
			}
			lats[w] = mine
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var cpu [2]time.Duration
	for k := range cpu {
		select {
		case cpu[k] = <-cpuAt:
		case <-pctx.Done():
			return nil, fmt.Errorf("%s %s: timed out", sys.name(), phase)
		}
	}
	r := &writeResult{system: sys.name(), phase: phase, writers: n, elapsed: dur, errs: int(errs.Load()), retries: sys.retries().since(rc, rl), cpu: cpu[1] - cpu[0]}
	if p := firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	for _, l := range lats {
		r.lat = append(r.lat, l...)
	}
	slices.Sort(r.lat)
	r.ops = len(r.lat)
	if r.ops == 0 {
		return r, fmt.Errorf("%s %s: no write succeeded (%d errors, first: %s)", r.system, phase, r.errs, r.firstErr)
	}
	return r, nil
}

// fanout counts, per round, the watchers that have seen the round's write.
type fanout struct {
	seen    []atomic.Uint64 // highest index each watcher has seen
	counted []atomic.Int64  // last round each watcher was counted in
	cur     atomic.Pointer[round]
}

type round struct {
	id        int64
	target    uint64
	n         int64
	remaining atomic.Int64
	firstAt   atomic.Int64 // unix nanos: the first watcher saw it
	halfAt    atomic.Int64 // half of the watchers saw it
	done      chan struct{}
	doneAt    time.Time // set before done is closed
}

func newFanout(n int) *fanout {
	return &fanout{seen: make([]atomic.Uint64, n), counted: make([]atomic.Int64, n)}
}

// observe is called by watcher i for every index it sees.
func (f *fanout) observe(i int, idx uint64) {
	for {
		old := f.seen[i].Load()
		if idx <= old || f.seen[i].CompareAndSwap(old, idx) {
			break
		}
	}
	if r := f.cur.Load(); r != nil && f.seen[i].Load() >= r.target {
		f.count(r, i)
	}
}

// count counts watcher i in round r, once: the watcher and the coordinator
// may both try.
func (f *fanout) count(r *round, i int) {
	for {
		c := f.counted[i].Load()
		if c >= r.id {
			return
		}
		if f.counted[i].CompareAndSwap(c, r.id) {
			left := r.remaining.Add(-1)
			if left == r.n-1 {
				r.firstAt.Store(time.Now().UnixNano())
			}
			if left == r.n/2 {
				r.halfAt.Store(time.Now().UnixNano())
			}
			if left == 0 {
				r.doneAt = time.Now()
				close(r.done)
			}
			return
		}
	}
}

type fanoutResult struct {
	system, mode string
	watchers     int
	rounds       []time.Duration // sorted; time from ack until the last watcher saw it
	first, half  []time.Duration // sorted; until the first watcher, half of them
	writeLat     []time.Duration // sorted; latency of the rounds' writes
	// inForce: sorted; from ack until the leader's census said the write
	// in force (coexist only); inForceErrs: rounds it did not.
	inForce     []time.Duration
	inForceErrs int
	timeouts    int
	missing     int // watchers that had not seen a timed-out round's write
	notes       []string
}

// inForceWaiter is a system that can say when a change is in force: every
// live watcher has acknowledged it (coexist's census, docs/design.md §5).
type inForceWaiter interface {
	WaitInForce(ctx context.Context, index uint64) error
}

// runFanout runs warm rounds plus rounds: one write each, then the time
// until every watcher has seen an index at least the write's, and, for a
// system with a census, until the registry says it is in force.
func runFanout(ctx context.Context, sys writer, f *fanout, n, warm, rounds int, gap, timeout time.Duration, roundBase int) (*fanoutResult, error) {
	res := &fanoutResult{system: sys.name(), watchers: n}
	rc, rl := sys.retries().snapshot()
	defer func() {
		if s := sys.retries().since(rc, rl); s != "" {
			res.notes = append(res.notes, s)
		}
	}()
	for k := 0; k < warm+rounds; k++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		t0 := time.Now()
		idx, err := sys.FanoutWrite(rctx, roundBase+k)
		ack := time.Now()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%s fan-out write: %w", sys.name(), err)
		}
		inForce := make(chan time.Duration, 1)
		if w, ok := sys.(inForceWaiter); ok {
			go func() {
				fctx, cancel := context.WithTimeout(ctx, timeout)
				defer cancel()
				if err := w.WaitInForce(fctx, idx); err != nil {
					inForce <- -1
					return
				}
				inForce <- time.Since(ack)
			}()
		} else {
			close(inForce)
		}
		r := &round{id: int64(roundBase + k + 1), target: idx, n: int64(n), done: make(chan struct{})}
		r.remaining.Store(int64(n))
		f.cur.Store(r)
		for i := 0; i < n; i++ {
			if f.seen[i].Load() >= idx {
				f.count(r, i)
			}
		}
		select {
		case <-r.done:
			if k >= warm {
				res.rounds = append(res.rounds, max(0, r.doneAt.Sub(ack)))
				res.first = append(res.first, max(0, time.Unix(0, r.firstAt.Load()).Sub(ack)))
				res.half = append(res.half, max(0, time.Unix(0, r.halfAt.Load()).Sub(ack)))
				res.writeLat = append(res.writeLat, ack.Sub(t0))
			}
		case <-time.After(timeout):
			if k >= warm {
				res.timeouts++
				res.missing += int(r.remaining.Load())
				res.rounds = append(res.rounds, timeout)
				res.writeLat = append(res.writeLat, ack.Sub(t0))
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if d, ok := <-inForce; ok && k >= warm {
			if d < 0 {
				res.inForceErrs++
			} else {
				res.inForce = append(res.inForce, d)
			}
		}
		sleepCtx(ctx, gap)
	}
	slices.Sort(res.inForce)
	slices.Sort(res.rounds)
	slices.Sort(res.first)
	slices.Sort(res.half)
	slices.Sort(res.writeLat)
	return res, nil
}
