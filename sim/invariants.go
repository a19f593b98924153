package sim

import (
	"fmt"
	"strings"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/reconcile"
	"github.com/coexist-dev/coexist/routing"
)

// Invariant names one of the promises of docs/design.md §9.
type Invariant string

// The invariants.
const (
	// Compatible: every served call went to a version whose declared range
	// admits the caller and that meets the caller's requirement; a call
	// chain that starts in a release set stays in it.
	Compatible Invariant = "compatible"
	// Available: a call from a client that had a compatible running version
	// never fails outright, after retries, outside injected faults.
	Available Invariant = "available"
	// NoRestarts: no container stops unless its desired state changed or
	// a fault crashed it; no node restarts but those a fault crashed.
	NoRestarts Invariant = "no-restarts"
	// Drained: a container stops only with nothing in flight, or once its
	// drain timeout has passed (which is reported, not a violation), and
	// never before its version's draining state is in force.
	Drained Invariant = "drained"
	// Converges: within the bound after the last change, observed equals
	// desired, every client routes to its newest compatible version and
	// every change is in force.
	Converges Invariant = "converges"
	// NoStranding: no live cohort loses its last candidate unless a step
	// forced it (docs/design.md §5).
	NoStranding Invariant = "no-stranding"
	// Deterministic: the same scenario and seed give the same trace hash.
	Deterministic Invariant = "deterministic"
	// AtMostOnce: a call that reached a service is never sent again
	// (docs/design.md §7): the SDK's call policy retries only what never
	// reached one. The simulator knows which attempts did.
	AtMostOnce Invariant = "at-most-once"
)

// Invariants lists them in the order of docs/design.md §9.
var Invariants = []Invariant{Compatible, Available, NoRestarts, Drained, Converges, NoStranding, Deterministic, AtMostOnce}

// Violation is one broken promise: when, on which event, with which seed.
type Violation struct {
	Invariant Invariant
	At        time.Duration // virtual time
	Event     string
	Seed      uint64
	Detail    string
}

func (v Violation) String() string {
	return fmt.Sprintf("%s violated at t=%s (seed %d, event %s): %s", v.Invariant, v.At, v.Seed, v.Event, v.Detail)
}

// FaultWindow is an injected fault and the time calls may fail on its
// account: from the fault until FaultSettle after it ended (To is -1 while
// it lasts). A node crash or restore and a container crash are instant: the
// window is FaultSettle long. Calls whose lifetime overlaps a window that
// Excuses are not held to Available.
type FaultWindow struct {
	Kind     string
	What     string
	From, To time.Duration
	// Excuses is false for a registry leader loss: routing needs no
	// leader, so calls are held to Available through it.
	Excuses bool
	// Excused counts the failed calls the fault excused.
	Excused int64

	// What the fault touches (docs/design.md §9, invariant 2): a node
	// crash or restore its node; a container crash its container's node;
	// a partition the links it cuts.
	node int32
	a, b group
}

// touches reports whether the fault could have made call k fail: it hit a
// node one of k's attempts went to (or, for a call a service made, the
// node it was made from), or cut a link k crossed — caller to a node it
// tried, or the registry from the caller (whose table it routed on) or
// from a node it tried (whose gateway admits by its own view).
func (f *FaultWindow) touches(k *call) bool {
	if f.a == nil {
		return k.triedNode(f.node) || (k.from.kind == epKindNode && k.from.id == f.node)
	}
	cuts := func(x, y endpoint) bool { return (f.a.has(x) && f.b.has(y)) || (f.a.has(y) && f.b.has(x)) }
	if cuts(k.from, epRegistry) {
		return true
	}
	if k.triedMore {
		return true
	}
	for i := uint8(0); i < k.nTried; i++ {
		n := nodeEP(k.tried[i])
		if cuts(k.from, n) || cuts(n, epRegistry) {
			return true
		}
	}
	return false
}

func (s *world) violate(inv Invariant, event, detail string) {
	s.tr.str(string(inv))
	s.res.addViolation(s.opt.MaxViolations, Violation{Invariant: inv, At: time.Duration(s.now), Event: event, Seed: s.opt.Seed, Detail: detail})
}

// addViolation counts a violation and keeps the first max of each
// invariant.
func (r *Result) addViolation(max int, v Violation) {
	r.ViolationCounts[v.Invariant]++
	if r.ViolationCounts[v.Invariant] <= max {
		r.Violations = append(r.Violations, v)
	}
}

// rangeEntry is one range a version was declared with: committed at at
// (index), first published at pubAt, and in force — by the registry's
// census, every live client and agent having acknowledged it — from seenAt
// (-1: not yet).
type rangeEntry struct {
	cons          version.Constraints
	at            int64
	index         uint64
	pubAt, seenAt int64
}

// admits reports whether version v admits caller key, with its
// requirement, by a range in force when the call began (docs/design.md §9,
// invariant 1): the range committed then, the ranges before it that some
// watcher had not yet replaced, and any committed since (a gateway whose
// view is newer admits by those).
func (s *world) admits(key int32, v *verInfo, callStart int64) bool {
	ck := uint64(key)<<32 | uint64(uint32(v.id))
	ok, seen := s.compat[ck]
	k := s.ckeys[key]
	if !seen {
		ok = v.cons != nil && v.cons.Check(k.parsed)
		if ok {
			if rc, has := k.reqCons[v.service]; has {
				ok = rc != nil && rc.Check(v.parsed)
			}
		}
		s.compat[ck] = ok
	}
	if ok || len(v.ranges) < 2 {
		return ok
	}
	if rc, has := k.reqCons[v.service]; has && (rc == nil || !rc.Check(v.parsed)) {
		return false
	}
	j := len(v.ranges) - 1
	for j > 0 && v.ranges[j].at > callStart {
		j--
	}
	for j > 0 && (v.ranges[j].seenAt < 0 || v.ranges[j].seenAt > callStart) {
		j-- // v.ranges[j] was not yet seen by all: the one before was in force
	}
	for _, e := range v.ranges[j:] {
		if e.cons.Check(k.parsed) {
			return true
		}
	}
	return false
}

// checkCompatible runs as a container takes a call.
func (s *world) checkCompatible(k *call) {
	v := s.vers[k.ver]
	if !s.admits(k.ckey, v, k.start) {
		ck := s.ckeys[k.ckey]
		req := ""
		if r, ok := ck.requires[v.service]; ok {
			req = fmt.Sprintf(" requiring %q", r)
		}
		s.violate(Compatible, fmt.Sprintf("serve call %d", k.id), fmt.Sprintf("client %s@%s%s served by %s (clients %q) on container %s",
			ck.name, ck.version, req, v.ref, v.clients, s.ctrs[k.target].id))
		return
	}
	if p := k.parent; p != nil && p.ver >= 0 {
		pv := s.vers[p.ver]
		if pv.releaseSet >= 0 && v.releaseSet != pv.releaseSet {
			s.violate(Compatible, fmt.Sprintf("serve call %d", k.id), fmt.Sprintf("call chain left release set %q: %s called %s",
				s.sc.ReleaseSets[pv.releaseSet].Name, pv.ref, v.ref))
		}
	}
}

// record accounts a finished call and checks Available.
func (s *world) record(k *call) {
	r := s.res
	r.Calls++
	pc := r.cohortOf(s, k.ckey)
	pc.Calls++
	lat := s.now - k.start
	if k.outcome == outOK {
		r.latency.add(lat)
		r.served(s, k.ver)
		if r.Chart != nil {
			r.Chart.add(s.now, s.vers[k.ver].ref)
		}
		return
	}
	r.Failed++
	pc.Failed++
	reason := k.reason
	if i := strings.IndexByte(reason, ':'); i > 0 && !strings.HasPrefix(reason, "deadline") {
		reason = reason[:i]
	} else if strings.HasPrefix(reason, "deadline") {
		reason = "deadline after retries"
	}
	r.FailedByReason[reason]++
	switch {
	case k.drainKill,
		k.downstream, // the call it made is judged on its own
		k.lost,       // a connection attempt was lost on a link it crossed
		s.excuse(k):
		r.Excused++
		pc.Excused++
		return
	}
	ck := s.ckeys[k.ckey]
	if ok, why := s.hadCandidate(k); ok {
		r.Judged++
		pc.Judged++
		pc.Violations++
		s.violate(Available, fmt.Sprintf("reply call %d", k.id), fmt.Sprintf("call from %s@%s to %s failed (%s) after %d attempts, though %s",
			ck.name, ck.version, s.services[k.svc].name, k.reason, k.attempts, why))
		return
	}
	// No candidate the whole time. That is a judgement when the fleet
	// offered the caller something during the call (a version admitting
	// it, held by a container, was in motion) or the scenario expects the
	// cohort unserved; when nothing was on offer, a forced retirement may
	// have stranded it; otherwise the failure is unjudged, which breaks
	// the invariant as surely as a violation does.
	switch {
	case s.offered(k):
		r.Judged++
		pc.Judged++
	case k.client >= 0 && s.cohorts[k.cohort].spec.ExpectUnserved:
		r.Judged++
		pc.Judged++
	case s.forcedAway(k):
		r.StrandedByForce++
		pc.StrandedByForce++
	default:
		r.Unjudged++
		pc.Unjudged++
		pc.Violations++
		s.violate(Available, fmt.Sprintf("reply call %d", k.id), fmt.Sprintf("unjudged: call from %s@%s to %s failed (%s) and no version admitting it was held by any container; "+
			"no fault touched it, no forced retirement stranded it and its cohort does not expect_unserved",
			ck.name, ck.version, s.services[k.svc].name, k.reason))
	}
}

// offered reports whether, during call k (from the staleness bound before
// it began), a version admitting the caller was active or draining and
// held by a container the registry had: the call may have found nothing
// stable, but the fleet was serving the caller or moving to.
func (s *world) offered(k *call) bool {
	since := k.start - s.stale
	st := s.reg.store
	for _, vid := range s.services[k.svc].versions {
		v := s.vers[vid]
		rec := st.Version(v.key)
		if rec == nil || !s.admits(k.ckey, v, k.start) {
			continue
		}
		if rec.State == api.VersionRetired && s.reg.commitTime(rec.ModifyIndex) <= since {
			continue
		}
		for _, ci := range v.holders {
			c := s.ctrs[ci]
			_, cr, _ := st.Container(c.id)
			if (cr != nil && cr.Desired == api.DesiredPresent) || (c.regChanged >= 0 && c.regChanged > since) {
				return true
			}
		}
	}
	return false
}

// forcedAway reports whether a retirement forced by a step took away a
// version that admitted the caller of k.
func (s *world) forcedAway(k *call) bool {
	for _, vid := range s.services[k.svc].versions {
		v := s.vers[vid]
		if v.forcedAt >= 0 && v.forcedAt <= s.now && s.admits(k.ckey, v, k.start) {
			return true
		}
	}
	return false
}

// hadCandidate reports whether the caller had a compatible version running
// in the true state since the staleness bound before the call began until
// it ended: declared active or draining, admitting the caller, held by a
// container the registry has had as running on a ready node since then,
// and whose process has really been healthy and admitting calls.
func (s *world) hadCandidate(k *call) (bool, string) {
	since := k.start - s.stale
	if since < 0 {
		return false, ""
	}
	st := s.reg.store
	for _, vid := range s.services[k.svc].versions {
		v := s.vers[vid]
		rec := st.Version(v.key)
		if rec == nil || (rec.State != api.VersionActive && rec.State != api.VersionDraining) {
			continue
		}
		if s.reg.commitTime(rec.ModifyIndex) > since || !s.admits(k.ckey, v, k.start) {
			continue
		}
		for _, ci := range v.holders {
			c := s.ctrs[ci]
			_, cr, _ := st.Container(c.id)
			// Since, by the registry's record, not counting reports of
			// calls in flight alone: they are for display and change
			// nothing a caller routes by.
			if cr == nil || cr.Desired != api.DesiredPresent || cr.Status == nil || cr.Status.State != api.ContainerRunning ||
				c.regChanged > since {
				continue
			}
			drained := false
			for _, ss := range cr.Status.Services {
				if ss.Service == v.service && ss.Version == v.version && ss.State == api.ServiceDrained {
					drained = true
				}
			}
			if drained {
				continue
			}
			_, nr, _ := st.Node(cr.Spec.Node)
			if nr == nil || nr.Status != api.NodeReady || s.reg.commitTime(nr.ModifyIndex) > since {
				continue
			}
			if !s.nodes[c.node].up || c.runningSince < 0 || c.runningSince > since {
				continue
			}
			return true, fmt.Sprintf("%s was running on container %s since %s", v.ref, c.id, time.Duration(c.runningSince))
		}
	}
	return false, ""
}

// probe checks convergence after the last change until it holds or the
// bound passes.
func (s *world) probe() {
	if s.convergeDone {
		s.probeOn = false
		return
	}
	ok, why := s.convergedNow()
	bound := s.lastChange + int64(s.sc.ConvergeWithin)
	if ok {
		s.converged, s.convergedAt, s.convergeDone = true, s.now, true
		s.probeOn = false
		if s.now > bound {
			s.violate(Converges, "probe", fmt.Sprintf("converged only %s after the last change at %s (bound %s)",
				time.Duration(s.now-s.lastChange), time.Duration(s.lastChange), s.sc.ConvergeWithin))
		}
		return
	}
	if s.now >= bound {
		s.convergeDone = true
		s.probeOn = false
		s.violate(Converges, "probe", fmt.Sprintf("not converged %s after the last change at %s: %s",
			s.sc.ConvergeWithin, time.Duration(s.lastChange), why))
		return
	}
	// Probe every half second, or more often under a tight bound, and at
	// the bound itself.
	step := min(int64(500*time.Millisecond), max(int64(s.sc.ConvergeWithin)/20, int64(time.Millisecond)))
	s.schedule(min(s.now+step, bound), evProbe, 0, 0, 0, nil)
}

// convergedNow says whether observed equals desired and every client routes
// to its newest compatible version, and if not, why not.
func (s *world) convergedNow() (bool, string) {
	r := &s.reg
	if r.leaderLost || len(r.pending) > 0 || r.logHead < len(r.log) {
		return false, "the registry has writes in flight"
	}
	latest := r.latest()
	if latest == nil || r.pubScheduled || r.dirtyServices || r.dirtyContainers || r.dirtyNodes {
		return false, "the last commit is not published yet"
	}
	_, vs, _ := r.store.Versions("")
	for _, v := range vs {
		if v.State == api.VersionDraining {
			return false, v.Key().String() + " is still draining"
		}
	}
	_, cs, _ := r.store.Containers("")
	for _, c := range cs {
		n := s.nodes[s.nodeByID[c.Spec.Node]]
		if !n.up {
			continue
		}
		wanted := c.Desired == api.DesiredPresent
		if wanted {
			wanted = false
			for _, k := range c.Spec.Services {
				if v := r.store.Version(k); v != nil && v.State != api.VersionRetired {
					wanted = true
				}
			}
		}
		state := ""
		if c.Status != nil {
			state = c.Status.State
		}
		switch {
		case wanted && state != api.ContainerRunning && state != api.ContainerFailed:
			return false, fmt.Sprintf("container %s is wanted but %s", c.ID, orNone(state))
		case wanted && state == api.ContainerFailed:
			if why := s.failedWrongly(s.ctrs[s.ctrByID[c.ID]]); why != "" {
				return false, fmt.Sprintf("container %s is failed, but %s", c.ID, why)
			}
		case !wanted && state != api.ContainerStopped && state != api.ContainerFailed && state != "":
			return false, fmt.Sprintf("container %s is not wanted but %s", c.ID, state)
		}
	}
	for _, n := range s.nodes {
		if !n.up {
			continue
		}
		if _, nr, _ := r.store.Node(n.id); nr == nil || nr.Status != api.NodeReady {
			status := "not registered"
			if nr != nil {
				status = nr.Status
			}
			return false, fmt.Sprintf("node %s is up but %s in the registry", n.id, status)
		}
		if v := s.nodeView(n); v == nil || v.idx != latest.idx {
			return false, "node " + n.id + " has not seen the last change"
		}
		for _, ci := range n.ctrs {
			c := s.ctrs[ci]
			if c.reporting {
				return false, "node " + n.id + " is reporting " + c.id
			}
			l := n.local[c.id]
			if l == nil {
				continue
			}
			switch l.Phase {
			case reconcile.PhaseRunning, reconcile.PhaseStopped, reconcile.PhaseFailed:
			case reconcile.PhaseExited:
				// Settled when it is not wanted: the agent reports it
				// stopped and leaves it.
				if vc := viewContainer(latest, c.id); vc != nil && wantedIn(vc, latest.versions) {
					return false, fmt.Sprintf("container %s is exited on node %s and waits for its restart", c.id, n.id)
				}
			default:
				return false, fmt.Sprintf("container %s is %s on node %s", c.id, l.Phase, n.id)
			}
		}
	}
	// Clients: each routes as the latest table would have it.
	truth := latest.table()
	type seen struct {
		view int32
		key  int32
		node int32
		svc  int32
	}
	checked := map[seen]bool{}
	for _, k := range s.cohorts {
		if s.now < k.started {
			continue
		}
		for ci := k.lo; ci < k.hi; ci++ {
			v := s.clientView(ci)
			if v != nil && v.idx == latest.idx {
				continue
			}
			vi := int32(-1)
			if v != nil {
				vi = v.idx
			}
			cv := s.cl.ver[ci]
			for _, svc := range k.calls {
				key := seen{vi, k.keys[cv], s.cl.node[ci], svc}
				if checked[key] {
					continue
				}
				checked[key] = true
				rc := s.routingClient(k, cv, s.cl.node[ci])
				name := s.services[svc].name
				want, werr := routing.Select(truth, *rc, name, nil)
				var got routing.Route
				var gerr error = routing.ErrUnknownService
				if v != nil {
					got, gerr = routing.Select(v.table(), *rc, name, nil)
				}
				if (werr == nil) != (gerr == nil) || got.Version != want.Version {
					return false, fmt.Sprintf("client %d of cohort %s (%s@%s) routes %s to %s, not to %s", ci-k.lo, k.spec.Name,
						k.spec.Name, k.versions[cv], name, routeLabel(got, gerr), routeLabel(want, werr))
				}
			}
		}
	}
	// Every change in force: every live watcher has acknowledged the last
	// index of every table.
	if !s.wasInForce(r.index, maskAll) {
		_, lag := s.cen.fleet.InForce(r.index, s.tableIndexes(maskAll), s.time())
		if len(lag) > 0 {
			return false, fmt.Sprintf("index %d is not in force: %d watchers lag, the first %s", r.index, len(lag), lag[0])
		}
		return false, fmt.Sprintf("index %d is not in force: the census is not complete", r.index)
	}
	return true, ""
}

// failedWrongly says why a wanted container the registry has failed
// should not be: a container is failed only when it never became healthy
// since its last start, or used up its restarts, which takes at least
// restart_attempts exits ("" when it may be failed).
func (s *world) failedWrongly(c *ctr) string {
	attempts := s.planCfg.RestartAttempts
	if p := c.spec.Restart; p != nil && p.Attempts > 0 {
		attempts = p.Attempts
	}
	switch {
	case !c.healthy:
		return ""
	case attempts > 0 && c.exits >= attempts:
		return ""
	case attempts <= 0:
		return fmt.Sprintf("it became healthy and its restarts are unlimited (%d exits)", c.exits)
	}
	return fmt.Sprintf("it became healthy and exited %d times, fewer than its %d restart attempts", c.exits, attempts)
}

// wantedIn is the reconciler's notion of a container that should run.
func wantedIn(c *api.Container, versions map[string]string) bool {
	if c.Desired == api.DesiredDeleted {
		return false
	}
	for _, ref := range c.Services {
		if versions[ref.String()] != api.VersionRetired {
			return true
		}
	}
	return false
}

func routeLabel(r routing.Route, err error) string {
	if err != nil {
		return "nothing"
	}
	return r.Version
}

func orNone(s string) string {
	if s == "" {
		return "not reported"
	}
	return s
}

// finish ends the run: convergence, totals, the trace hash.
func (s *world) finish(wall time.Duration) {
	r := s.res
	if !s.convergeDone {
		ok, why := s.convergedNow()
		switch {
		case ok:
			s.converged, s.convergedAt = true, s.now
		case s.now >= s.lastChange+int64(s.sc.ConvergeWithin):
			s.violate(Converges, "end of run", fmt.Sprintf("not converged %s after the last change at %s: %s",
				s.sc.ConvergeWithin, time.Duration(s.lastChange), why))
		default:
			r.Notes = append(r.Notes, fmt.Sprintf("the run ended %s after the last change, before the convergence bound: %s",
				time.Duration(s.now-s.lastChange), why))
		}
	}
	r.Converged = s.converged
	if s.converged {
		r.ConvergedAfter = time.Duration(max(0, s.convergedAt-s.lastChange))
	}
	r.LastChange = time.Duration(s.lastChange)
	r.TraceHash = s.tr.h
	r.Events = s.events
	r.Virtual = time.Duration(s.now)
	r.Wall = wall
	r.Faults = s.faults
	r.P50, r.P90, r.P99, r.Max = r.latency.quantile(0.5), r.latency.quantile(0.9), r.latency.quantile(0.99), r.latency.max
	r.finalize(s)
	if !s.opt.NoRecord {
		if len(s.steps) > 0 {
			s.snapshot(&s.steps[len(s.steps)-1])
		} else {
			s.snapshot(nil)
		}
	}
}
