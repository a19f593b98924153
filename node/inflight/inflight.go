package inflight

import (
	"sync"
	"sync/atomic"
)

// Counts counts the calls in flight on this node, per container and per
// "service@version" it holds. The gateway counts every call it forwards to a
// local container for the whole of the call, body included; the agent reads
// the counts to decide when a drain is over and to report them.
//
// It is safe for concurrent use. After the first call for a (container, key)
// pair, Begin and End take only read locks and atomic adds and allocate
// nothing.
type Counts struct {
	mu         sync.RWMutex
	containers map[string]*ctrCounters
}

// ctrCounters are the counts of one container.
type ctrCounters struct {
	total atomic.Int64

	mu   sync.RWMutex
	keys map[string]*counter
}

// counter is the count of one "service@version" in one container: its calls
// in flight, and every call it has begun (for the calls per minute shown to
// operators, Served).
type counter struct {
	inflight atomic.Int64
	served   atomic.Int64
}

// New returns empty Counts.
func New() *Counts {
	return &Counts{containers: make(map[string]*ctrCounters)}
}

// Call is one call counted in flight by Begin. Its zero value counts nothing.
type Call struct {
	ctr *ctrCounters
	key *counter
}

// Begin counts one call in flight for container and key ("service@version")
// until End is called on the result, exactly once.
//
// A call that began before Forget(container) still ends without harm: it
// decrements the forgotten counters, not those of a container of the same id
// that came after.
func (f *Counts) Begin(container, key string) Call {
	c := f.counters(container)
	k := c.counter(key)
	c.total.Add(1)
	k.inflight.Add(1)
	k.served.Add(1)
	return Call{ctr: c, key: k}
}

// End ends the call.
func (c Call) End() {
	if c.ctr == nil {
		return
	}
	c.key.inflight.Add(-1)
	c.ctr.total.Add(-1)
}

// Add adds delta to the count of container and key. Begin and End are the
// usual way; Add is for callers that count calls they do not hold a Call for.
func (f *Counts) Add(container, key string, delta int64) {
	c := f.counters(container)
	c.counter(key).inflight.Add(delta)
	c.total.Add(delta)
}

// Total returns the number of calls in flight to container, all its versions
// together.
func (f *Counts) Total(container string) int {
	f.mu.RLock()
	c := f.containers[container]
	f.mu.RUnlock()
	if c == nil {
		return 0
	}
	return int(c.total.Load())
}

// Snapshot returns the calls in flight to container by "service@version",
// leaving out keys with none. The map is new and never nil: the caller owns
// it.
func (f *Counts) Snapshot(container string) map[string]int {
	out := map[string]int{}
	f.mu.RLock()
	c := f.containers[container]
	f.mu.RUnlock()
	if c == nil {
		return out
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for k, n := range c.keys {
		if v := n.inflight.Load(); v != 0 {
			out[k] = int(v)
		}
	}
	return out
}

// Served returns the calls container has begun since it was first counted,
// by "service@version", leaving out keys with none. The map is new and never
// nil: the caller owns it. A Minute turns it into calls per minute.
func (f *Counts) Served(container string) map[string]int64 {
	out := map[string]int64{}
	f.mu.RLock()
	c := f.containers[container]
	f.mu.RUnlock()
	if c == nil {
		return out
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for k, n := range c.keys {
		if v := n.served.Load(); v != 0 {
			out[k] = v
		}
	}
	return out
}

// Forget drops the counts of container, once it is stopped and forgotten by
// the agent.
func (f *Counts) Forget(container string) {
	f.mu.Lock()
	delete(f.containers, container)
	f.mu.Unlock()
}

// Each calls fn with the total of every container counted, in no order. fn
// must not call back into f.
func (f *Counts) Each(fn func(container string, total int)) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for id, c := range f.containers {
		fn(id, int(c.total.Load()))
	}
}

// counters returns the counters of container, creating them on first use.
func (f *Counts) counters(container string) *ctrCounters {
	f.mu.RLock()
	c := f.containers[container]
	f.mu.RUnlock()
	if c != nil {
		return c
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c = f.containers[container]; c == nil {
		c = &ctrCounters{keys: make(map[string]*counter)}
		f.containers[container] = c
	}
	return c
}

// counter returns the counter of key, creating it on first use.
func (c *ctrCounters) counter(key string) *counter {
	c.mu.RLock()
	k := c.keys[key]
	c.mu.RUnlock()
	if k != nil {
		return k
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k = c.keys[key]; k == nil {
		k = new(counter)
		c.keys[key] = k
	}
	return k
}
