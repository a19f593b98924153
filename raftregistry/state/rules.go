package state

import (
	"cmp"
	"slices"
	"time"
)

// RetireDue names a draining version the leader found ready to retire, with
// the modify index it saw.
type RetireDue struct {
	Service     string `json:"service"`
	Version     string `json:"version"`
	ModifyIndex uint64 `json:"modify_index"`
	// Reason is for logs: "drained", "drain timeout", "no container".
	Reason string `json:"reason,omitempty"`
}

// DueRetirements applies the retire rule (DESIGN §5) at time now: a draining
// version is due when no container holds it, when every container holding it
// reports it drained (or is not running it at all), or when the longest drain
// timeout among its containers has passed since its drain began.
func (s *Store) DueRetirements(now time.Time) []RetireDue {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []RetireDue
	for k := range s.draining {
		v := s.version(k)
		holders, drained := 0, 0
		timeout := time.Duration(0)
		for _, c := range s.containers {
			if !c.Spec.Holds(k) {
				continue
			}
			holders++
			timeout = max(timeout, c.Spec.DrainTimeout)
			if versionDrainedIn(c, k) {
				drained++
			}
		}
		due := RetireDue{Service: k.Service, Version: k.Version, ModifyIndex: v.ModifyIndex}
		switch {
		case holders == 0:
			due.Reason = "no container"
		case drained == holders:
			due.Reason = "drained"
		case v.DrainStartedAt != nil && !now.Before(v.DrainStartedAt.Add(timeout)):
			due.Reason = "drain timeout"
		default:
			continue
		}
		out = append(out, due)
	}
	slices.SortFunc(out, func(a, b RetireDue) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Version, b.Version))
	})
	return out
}

// HoldUntilInForce splits the due retirements into those whose draining
// state is in force and those held back: a version retires, and its
// containers stop, only once every live party that routes has seen it
// draining (docs/design.md §5). inForce answers whether the change at an
// index of the services table is in force; the leader asks its census, the
// simulator its own.
func HoldUntilInForce(due []RetireDue, inForce func(index uint64) bool) (ready, held []RetireDue) {
	for _, d := range due {
		if inForce(d.ModifyIndex) {
			ready = append(ready, d)
		} else {
			held = append(held, d)
		}
	}
	return ready, held
}

// NextRetireDeadline returns the earliest time a draining version's drain
// timeout passes, so the leader can sleep until then; ok is false when no
// version is draining.
func (s *Store) NextRetireDeadline() (t time.Time, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for k := range s.draining {
		v := s.version(k)
		if v.DrainStartedAt == nil {
			continue
		}
		timeout := time.Duration(0)
		for _, c := range s.containers {
			if c.Spec.Holds(k) {
				timeout = max(timeout, c.Spec.DrainTimeout)
			}
		}
		d := v.DrainStartedAt.Add(timeout)
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}

// versionDrainedIn reports whether container c has nothing in flight for k:
// it reports k drained, or it is not running at all.
func versionDrainedIn(c *Container, k VersionKey) bool {
	st := c.Status
	if st == nil {
		return true
	}
	switch st.State {
	case ContainerStopped, ContainerFailed:
		return true
	case ContainerStarting:
		// Not yet routable: it has served nothing.
		return true
	}
	return st.serviceState(k) == ServiceDrained
}

// Heartbeats keeps the leader's TTL timers of node heartbeats. It is not
// replicated: a new leader starts it afresh with ResetAll. Time comes in as
// arguments; it is not safe for concurrent use.
type Heartbeats struct {
	TTL  time.Duration
	last map[string]time.Time
}

// NewHeartbeats returns an empty set of timers with the given TTL.
func NewHeartbeats(ttl time.Duration) *Heartbeats {
	return &Heartbeats{TTL: ttl, last: map[string]time.Time{}}
}

// Beat records a heartbeat from node at now.
func (h *Heartbeats) Beat(node string, now time.Time) { h.last[node] = now }

// Forget drops a node's timer (the node was purged).
func (h *Heartbeats) Forget(node string) { delete(h.last, node) }

// ResetAll gives every node a fresh TTL from now, as a new leader must.
func (h *Heartbeats) ResetAll(nodes []string, now time.Time) {
	h.last = make(map[string]time.Time, len(nodes))
	for _, n := range nodes {
		h.last[n] = now
	}
}

// StatusChanges compares the timers with the nodes' current statuses and
// returns the status writes needed: ready nodes whose TTL passed become down,
// down nodes that beat within the TTL become ready. Nodes the timers do not
// know get a fresh TTL from now. Sorted by node id.
func (h *Heartbeats) StatusChanges(nodes []*Node, now time.Time) []SetNodeStatus {
	var out []SetNodeStatus
	for _, n := range nodes {
		last, ok := h.last[n.ID]
		if !ok {
			h.last[n.ID] = now
			continue
		}
		alive := now.Sub(last) < h.TTL
		switch {
		case alive && n.Status == NodeDown:
			out = append(out, SetNodeStatus{ID: n.ID, Status: NodeReady})
		case !alive && n.Status == NodeReady:
			out = append(out, SetNodeStatus{ID: n.ID, Status: NodeDown})
		}
	}
	slices.SortFunc(out, func(a, b SetNodeStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// NextExpiry returns the earliest time a live timer expires.
func (h *Heartbeats) NextExpiry() (t time.Time, ok bool) {
	for _, last := range h.last {
		d := last.Add(h.TTL)
		if !ok || d.Before(t) {
			t, ok = d, true
		}
	}
	return t, ok
}
