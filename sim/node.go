package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/inflight"
	"github.com/coexist-dev/coexist/node/reconcile"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/coexist-dev/coexist/routing"
)

// simNode is one node: its agent (the real reconciler over a simulated
// driver) and its gateway.
type simNode struct {
	idx     int32
	id      string
	gateway string
	up      bool
	// gen changes when the node crashes or comes back: events of an older
	// life are ignored.
	gen   uint32
	local reconcile.Observed
	// inflight is the gateway's count of calls in flight, which the agent
	// reads before each plan; the simulator keeps its own count per
	// container (ctr.total) to check the agent against.
	inflight *inflight.Counts
	ctrs     []int32 // every container ever placed here

	delay  int64 // its watch's delay behind a publication
	view   int32 // cached publication index
	frozen int32 // publication index while cut from the registry, or -1

	kickPending bool
	reconcileAt int64 // when a periodic reconcile is queued, or -1
	retryReport bool  // a report failed: the next tick plans
	epoch       uint32

	gwView    int32
	gwEpoch   uint32
	gwTable   *routing.Table
	gwClients []routing.Client // by client key; a zero one (no Version) is not parsed yet
	restarts  int
}

type procState uint8

const (
	procNone     procState = iota
	procStarting           // started, not yet listening
	procUp                 // listening (running, draining or failing checks)
	procStopping           // SIGTERM sent; still listening until it exits
	procDead               // exited, stopped or killed
)

// ctr is one container: what the scenario declared, and its simulated
// process.
type ctr struct {
	idx          int32
	id           string
	node         int32
	vers         []int32  // version ids, in the order of the spec
	keys         []string // "service@version", the same order
	spec         state.ContainerSpec
	drainTimeout int64
	failsHealth  bool
	crashesAfter Dist // its process crashes this long after each time it becomes healthy; zero: never
	endpoint     string

	// The process.
	gen          uint32
	proc         procState
	runningSince int64 // healthy and admitting calls since, or -1
	// regChanged is when the registry's record last changed in anything
	// but calls in flight (display only): the record's "running since".
	regChanged  int64
	fp          string
	localFP     string // the fingerprint the agent recorded
	starts      int
	inflight    []int32
	total       int32
	calls       []*call
	drainHeld   bool // holds a version draining or retired in its node's view
	draining    bool // its agent drains it
	killTimeout bool // its stop passed the drain timeout
	stopChecked bool
	faultCrash  bool // its last end was a fault
	// healthy: it passed a health check since its last start; exits
	// counts the times its process ended on its own or by a fault.
	healthy bool
	exits   int

	// What the agent persists across its own restarts.
	persisted bool
	restarts  int

	// Reporting.
	reporting bool
	sending   *api.ContainerStatus
}

// startNode starts a node's agent: at the beginning of the run, or when a
// crashed node comes back.
func (s *world) startNode(n *simNode, first bool) {
	n.up = true
	n.gen++
	n.local = reconcile.Observed{}
	n.inflight = inflight.New()
	n.gwView, n.gwTable = -2, nil
	n.gwClients = nil
	n.kickPending = false
	n.reconcileAt = -1
	n.retryReport = false
	if first {
		n.delay = int64(s.sc.Registry.NodePropagation.Sample(s.rnd))
	}
	s.reg.propose(entry{cmd: &state.RegisterNode{ID: n.id, Address: n.id, Gateway: n.gateway}})
	first0 := s.now + int64(s.rnd.Int64N(int64(s.sc.Agent.HeartbeatInterval)))
	s.schedule(first0, evHeartbeat, n.idx, 0, n.gen, nil)
}

// kick asks the agent to plan now.
func (s *world) kick(n *simNode) {
	if !n.up || n.kickPending {
		return
	}
	n.kickPending = true
	s.schedule(s.now, evReconcile, n.idx, 0, n.gen, nil)
}

func (s *world) onReconcile(n *simNode, gen uint32, periodic int32) {
	if n.gen != gen || !n.up {
		return
	}
	if periodic != 0 {
		if n.reconcileAt != s.now {
			return
		}
		n.reconcileAt = -1
		if !s.busy(n) && !n.retryReport && !s.inflightUnreported(n) {
			// An idle tick with nothing time could change: every other
			// change kicks the agent at once, so the plan would be empty.
			s.schedulePlan(n, s.now+int64(s.sc.Agent.ReconcileInterval))
			return
		}
	} else {
		n.kickPending = false
	}
	s.reconcile(n)
}

// nodeView is the publication the node's agent sees now.
func (s *world) nodeView(n *simNode) *pub {
	if n.frozen >= 0 {
		return s.reg.pubs[n.frozen]
	}
	n.view = s.reg.viewAt(n.view, n.delay)
	if n.view < 0 {
		return nil
	}
	return s.reg.pubs[n.view]
}

// reconcile is Agent.reconcile: plan against the node's view of the
// registry, then carry the actions out.
func (s *world) reconcile(n *simNode) {
	v := s.nodeView(n)
	if v == nil {
		return
	}
	mine := make([]api.Container, len(v.byNode[n.idx]))
	for i, ci := range v.byNode[n.idx] {
		mine[i] = v.ctrs[ci]
	}
	for _, ci := range n.ctrs {
		c := s.ctrs[ci]
		l := n.local[c.id]
		if l == nil {
			continue
		}
		l.Inflight = n.inflight.Snapshot(c.id)
	}
	for i := range mine {
		c := s.ctrs[s.ctrByID[mine[i].ID]]
		c.drainHeld = false
		for _, k := range c.keys {
			if st := v.versions[k]; st == api.VersionDraining || st == api.VersionRetired {
				c.drainHeld = true
			}
		}
	}
	acts := s.hooks.Planner(reconcile.Desired{Containers: mine, Versions: v.versions}, n.local, s.time(), s.planCfg)
	changed := false
	for _, a := range acts {
		c, ok := s.ctrByID[a.ID]
		if !ok {
			continue
		}
		s.tr.word(uint64(a.Kind) | uint64(c)<<8)
		if s.carryOut(n, v, s.ctrs[c], a) {
			changed = true
		}
	}
	n.retryReport = false
	if changed {
		n.epoch++
		s.kick(n)
	}
	// The agent plans again at its next tick (every reconcile_interval,
	// as Agent.reconcileLoop does when idle), or sooner when a timer of
	// the plan is due: a restart, a start or drain timeout.
	next := s.now + int64(s.sc.Agent.ReconcileInterval)
	if s.busy(n) {
		if due, ok := s.nextDue(n, mine, v.versions, next); ok {
			next = due
		}
	}
	s.schedulePlan(n, next)
}

// schedulePlan queues the agent's next timed plan at t, unless one is
// queued sooner.
func (s *world) schedulePlan(n *simNode, t int64) {
	if !n.up || (n.reconcileAt >= 0 && n.reconcileAt <= t) {
		return
	}
	n.reconcileAt = t
	s.schedule(t, evReconcile, n.idx, 1, n.gen, nil)
}

// nextDue asks the planner when, before limit, the plan of one of the
// node's containers changes with time alone: the planner is pure, and each
// of its timers (a restart's backoff, a start or drain timeout) only ever
// turns an action on, so the first time the plan differs from now's is
// found by bisection, to the millisecond. reconcile.Plan exports no "next due
// time"; were it to, this would ask it instead.
func (s *world) nextDue(n *simNode, mine []api.Container, versions map[string]string, limit int64) (int64, bool) {
	due, found := limit, false
	for i := range mine {
		l := n.local[mine[i].ID]
		if l == nil {
			continue
		}
		switch l.Phase {
		case reconcile.PhaseExited, reconcile.PhaseStarting, reconcile.PhaseDraining:
		default:
			continue
		}
		d := reconcile.Desired{Containers: mine[i : i+1], Versions: versions}
		o := reconcile.Observed{l.ID: l}
		plan := func(t int64) uint64 {
			var h uint64
			for _, a := range s.hooks.Planner(d, o, epoch.Add(time.Duration(t)), s.planCfg) {
				h = h<<4 | uint64(a.Kind)
			}
			return h
		}
		base := plan(s.now)
		if plan(due) == base {
			continue
		}
		lo, hi := s.now, due
		for hi-lo > int64(time.Millisecond) {
			mid := lo + (hi-lo)/2
			if plan(mid) != base {
				hi = mid
			} else {
				lo = mid
			}
		}
		due, found = hi, true
	}
	return due, found
}

// inflightUnreported reports whether a container's calls in flight differ
// from those its last accepted report gave, which the plan reports once
// inflight_report_interval has passed.
func (s *world) inflightUnreported(n *simNode) bool {
	if s.planCfg.InflightReportInterval <= 0 {
		return false
	}
	for _, ci := range n.ctrs {
		c := s.ctrs[ci]
		l := n.local[c.id]
		if l == nil || l.Reported == nil {
			continue
		}
		if len(l.Reported.Services) != len(c.keys) {
			return true
		}
		for j, ss := range l.Reported.Services {
			if ss.Inflight != int(c.inflight[j]) || ss.Service+"@"+ss.Version != c.keys[j] {
				return true
			}
		}
	}
	return false
}

// busy is Agent.busy, and a report waiting to be sent again.
func (s *world) busy(n *simNode) bool {
	for _, ci := range n.ctrs {
		c := s.ctrs[ci]
		if l := n.local[c.id]; l != nil {
			switch l.Phase {
			case reconcile.PhaseDraining, reconcile.PhaseStarting, reconcile.PhaseExited, reconcile.PhaseStopping:
				return true
			}
		}
	}
	return false
}

// viewContainer finds a container in a publication.
func viewContainer(v *pub, id string) *api.Container {
	if i, ok := v.byID[id]; ok {
		return &v.ctrs[i]
	}
	return nil
}

// carryOut is Agent.carryOut against the simulated driver; it reports
// whether local state changed.
func (s *world) carryOut(n *simNode, v *pub, c *ctr, a reconcile.Action) bool {
	switch a.Kind {
	case reconcile.ActStart:
		prev := n.local[c.id]
		l := &reconcile.Local{ID: c.id, Fingerprint: reconcile.Fingerprint(a.Container), DrainTimeout: a.Container.DrainTimeout.Std(), Inflight: map[string]int{}}
		if prev != nil {
			l.Reported, l.ReportedAt = prev.Reported, prev.ReportedAt
			l.Exits = prev.Exits
			l.Restarts = prev.Restarts
			if prev.Phase == reconcile.PhaseExited {
				l.Restarts++
			}
		}
		c.gen++
		c.proc = procStarting
		c.draining = false
		c.runningSince = -1
		c.killTimeout, c.stopChecked = false, false
		c.healthy = false
		l.Phase, l.PID, l.Endpoint, l.StartedAt = reconcile.PhaseStarting, int(c.idx)*1000+int(c.gen), c.endpoint, s.time()
		if l.Restarts > 0 {
			l.Message = fmt.Sprintf("restarted %d times", l.Restarts)
		}
		n.local[c.id] = l
		if vc := viewContainer(v, c.id); vc != nil {
			c.fp = reconcile.Fingerprint(vc)
			if !wantedIn(vc, v.versions) {
				s.violate(NoRestarts, "start "+c.id, fmt.Sprintf("node %s started container %s (%s), which its desired state says must not run", n.id, c.id, a.Reason))
			}
		} else {
			s.violate(NoRestarts, "start "+c.id, fmt.Sprintf("node %s started container %s (%s), which the registry does not have", n.id, c.id, a.Reason))
		}
		c.localFP = l.Fingerprint
		c.persisted, c.restarts = true, l.Restarts
		c.starts++
		if c.starts > 1 {
			s.res.Restarts++
			if c.faultCrash {
				s.res.FaultRestarts++
			}
		}
		c.faultCrash = false
		if !c.failsHealth {
			up := s.sc.Agent.StartTime.Sample(s.rnd) + s.sc.Agent.HealthDelay.Sample(s.rnd)
			s.schedule(s.now+int64(up), evHealthy, c.idx, 0, c.gen, nil)
		} else {
			// Listening, but never healthy.
			s.schedule(s.now+int64(s.sc.Agent.StartTime.Sample(s.rnd)), evHealthy, c.idx, 1, c.gen, nil)
		}
		return true

	case reconcile.ActDrain:
		if l := n.local[c.id]; l != nil {
			l.Phase, l.DrainStartedAt = reconcile.PhaseDraining, s.time()
		}
		c.draining = true
		c.runningSince = -1
		return true

	case reconcile.ActResume:
		if l := n.local[c.id]; l != nil && l.Phase == reconcile.PhaseDraining {
			l.Phase, l.DrainStartedAt = reconcile.PhaseRunning, time.Time{}
		}
		c.draining = false
		c.runningSince = s.now
		return true

	case reconcile.ActStop:
		l := n.local[c.id]
		if l != nil {
			s.checkStop(n, v, c, l, a)
			l.Phase = reconcile.PhaseStopping
		}
		s.stopProcess(c, a.Grace)
		return true

	case reconcile.ActFail:
		if l := n.local[c.id]; l != nil {
			l.Phase = reconcile.PhaseFailed
			l.Message = a.Reason
		}
		s.stopProcess(c, a.Grace)
		return true

	case reconcile.ActReport:
		s.report(n, c, a.Status)
		return false

	case reconcile.ActForget:
		delete(n.local, c.id)
		n.inflight.Forget(c.id)
		c.persisted = false
		return true
	}
	return false
}

// stopProcess sends SIGTERM; the process exits after a sampled time, cut at
// grace (SIGKILL).
func (s *world) stopProcess(c *ctr, grace time.Duration) {
	c.runningSince = -1
	switch c.proc {
	case procNone, procDead:
		s.schedule(s.now, evExited, c.idx, 0, c.gen, nil)
		return
	}
	c.proc = procStopping
	d := min(s.sc.Agent.StopTime.Sample(s.rnd), grace)
	s.schedule(s.now+int64(d), evExited, c.idx, 0, c.gen, nil)
}

func (s *world) onHealthy(c *ctr, gen uint32) {
	if c.gen != gen {
		return
	}
	n := s.nodes[c.node]
	if !n.up {
		return
	}
	if c.proc == procStarting {
		c.proc = procUp
	}
	if c.failsHealth {
		return
	}
	l := n.local[c.id]
	if l == nil || (l.Phase != reconcile.PhaseStarting && l.Phase != reconcile.PhaseUnhealthy) {
		return
	}
	l.Phase, l.HealthyOnce = reconcile.PhaseRunning, true
	if l.Restarts == 0 {
		l.Message = ""
	}
	c.runningSince = s.now
	c.healthy = true
	if !c.crashesAfter.IsZero() {
		s.schedule(s.now+int64(c.crashesAfter.Sample(s.rnd)), evCrash, c.idx, 0, c.gen, nil)
	}
	n.epoch++
	s.kick(n)
}

// onCrash is a process of a version that says crashes_after dying on its
// own, as a crash_container step kills one: a fault whose window excuses
// the calls it touched. Its agent restarts it until its restarts are used
// up, then reports it failed for good.
func (s *world) onCrash(c *ctr, gen uint32) {
	if c.gen != gen || c.proc != procUp || !s.nodes[c.node].up {
		return
	}
	s.crashContainer(c)
}

func (s *world) onExited(c *ctr, gen uint32) {
	if c.gen != gen {
		return
	}
	n := s.nodes[c.node]
	c.proc = procDead
	c.runningSince = -1
	if c.total > 0 {
		if !c.killTimeout && !c.stopChecked {
			s.violate(Drained, "exited "+c.id, fmt.Sprintf("container %s exited with %d calls in flight that its gateway admitted after its stop began", c.id, c.total))
		}
		s.killCalls(c, c.killTimeout)
	}
	if !n.up {
		return
	}
	if l := n.local[c.id]; l != nil {
		switch l.Phase {
		case reconcile.PhaseStopping:
			l.Phase, l.Message = reconcile.PhaseStopped, ""
		case reconcile.PhaseFailed:
		default:
			l.Phase, l.ExitedAt, l.ExitCode = reconcile.PhaseExited, s.time(), 0
			l.Exits = reconcile.RecordExit(l.Exits, l.ExitedAt)
			c.exits++
			l.Message = "exited with code 0"
		}
	}
	n.epoch++
	s.kick(n)
}

// checkStop checks a stop against two invariants: a container stops only
// when its desired state changed (no restarts), and only with nothing in
// flight unless its drain timeout passed (drained).
func (s *world) checkStop(n *simNode, v *pub, c *ctr, l *reconcile.Local, a reconcile.Action) {
	vc := viewContainer(v, c.id)
	justified := vc == nil || vc.Desired == api.DesiredDeleted || reconcile.Fingerprint(vc) != c.fp
	if !justified {
		retired := true
		for _, ref := range vc.Services {
			if v.versions[ref.String()] != api.VersionRetired {
				retired = false
			}
		}
		justified = retired
	}
	if !justified && l.Phase != reconcile.PhaseExited && l.Phase != reconcile.PhaseFailed {
		s.violate(NoRestarts, "stop "+c.id, fmt.Sprintf("node %s stopped container %s (%s) though its desired state did not change", n.id, c.id, a.Reason))
	}
	c.stopChecked = true
	if vc != nil && vc.Desired != api.DesiredDeleted && reconcile.Fingerprint(vc) == c.fp {
		// Stopped because its versions are retired: never before their
		// draining state is in force (docs/design.md §9, invariant 4).
		for _, ref := range vc.Services {
			v := s.vers[s.verByRef[ref.String()]]
			if v.drainIndex > 0 && !s.wasInForce(v.drainIndex, maskServices) {
				s.violate(Drained, "stop "+c.id, fmt.Sprintf("node %s stopped container %s before the draining state of %s (index %d) was in force",
					n.id, c.id, v.ref, v.drainIndex))
			}
		}
	}
	if c.total == 0 {
		return
	}
	drainStart := l.DrainStartedAt
	if l.Phase != reconcile.PhaseDraining || drainStart.IsZero() {
		s.violate(Drained, "stop "+c.id, fmt.Sprintf("node %s stopped container %s with %d calls in flight without draining it (%s)", n.id, c.id, c.total, a.Reason))
		return
	}
	if s.time().Sub(drainStart) >= time.Duration(c.drainTimeout) {
		c.killTimeout = true
		s.res.DrainTimeouts++
		return
	}
	s.violate(Drained, "stop "+c.id, fmt.Sprintf("node %s stopped container %s with %d calls in flight %s into its drain (timeout %s)",
		n.id, c.id, c.total, s.time().Sub(drainStart), time.Duration(c.drainTimeout)))
}

// report sends a status report, one at a time per container.
func (s *world) report(n *simNode, c *ctr, st *api.ContainerStatus) {
	if c.reporting {
		return
	}
	c.reporting = true
	c.sending = st
	if s.net.cut(nodeEP(n.idx), epRegistry) {
		s.schedule(s.now+int64(s.sc.Agent.ReportTimeout), evReportFail, c.idx, int32(n.gen), 0, nil)
		return
	}
	s.schedule(s.now+s.net.sample(s), evReportArrive, c.idx, int32(n.gen), 0, nil)
}

func (s *world) onReportAck(c *ctr, ngen uint32, ok bool) {
	n := s.nodes[c.node]
	if n.gen != ngen {
		return
	}
	c.reporting = false
	if ok {
		switch l := n.local[c.id]; {
		case l != nil:
			l.Reported, l.ReportedAt = c.sending, s.time()
		case c.sending != nil && c.sending.State == api.ContainerStopped:
			// As Agent.report: remember a report of a container that
			// never ran here.
			n.local[c.id] = &reconcile.Local{ID: c.id, Phase: reconcile.PhaseStopped, Reported: c.sending, ReportedAt: s.time(), Inflight: map[string]int{}}
		}
	}
	c.sending = nil
	s.kick(n)
}

func (s *world) onReportFail(c *ctr, ngen uint32) {
	n := s.nodes[c.node]
	if n.gen != ngen {
		return
	}
	c.reporting = false
	c.sending = nil
	n.retryReport = true
	s.schedulePlan(n, s.now+int64(s.sc.Agent.ReconcileInterval))
}

func (s *world) onHeartbeat(n *simNode, gen uint32) {
	if n.gen != gen || !n.up || s.hooks.NoHeartbeats {
		return
	}
	if !s.net.cut(nodeEP(n.idx), epRegistry) {
		s.schedule(s.now+s.net.sample(s), evBeatArrive, n.idx, 0, 0, nil)
	}
	s.schedule(s.now+int64(s.sc.Agent.HeartbeatInterval), evHeartbeat, n.idx, 0, n.gen, nil)
}

// crashNode kills a node: agent, gateway and every process on it.
func (s *world) crashNode(n *simNode) {
	if !n.up {
		return
	}
	s.instantFault("node-crash", n.id, n.idx)
	s.censusAgentDown(n)
	n.up = false
	n.gen++
	for _, ci := range n.ctrs {
		c := s.ctrs[ci]
		c.reporting, c.sending = false, nil
		if c.proc == procNone || c.proc == procDead {
			continue
		}
		s.killProcess(c)
	}
	n.local = nil
}

// restoreNode brings a crashed node back: the agent finds the containers it
// had started dead (Agent.recover) and starts them again.
func (s *world) restoreNode(n *simNode) {
	if n.up {
		return
	}
	s.instantFault("node-restore", n.id, n.idx)
	n.restarts++
	s.res.NodeRestarts++
	s.startNode(n, false)
	for _, ci := range n.ctrs {
		c := s.ctrs[ci]
		if !c.persisted {
			continue
		}
		n.local[c.id] = &reconcile.Local{ID: c.id, Fingerprint: c.localFP, Restarts: c.restarts, Inflight: map[string]int{},
			Phase: reconcile.PhaseExited, ExitedAt: s.time(), ExitCode: -1, Exits: reconcile.RecordExit(nil, s.time()), Message: "exited while the agent was down"}
	}
	s.kick(n)
}

// crashContainer kills one process; its agent sees it exit.
func (s *world) crashContainer(c *ctr) {
	if c.proc == procNone || c.proc == procDead {
		return
	}
	s.instantFault("container-crash", c.id, c.node)
	s.killProcess(c)
	n := s.nodes[c.node]
	if !n.up {
		return
	}
	if l := n.local[c.id]; l != nil && l.Phase != reconcile.PhaseStopped && l.Phase != reconcile.PhaseFailed {
		l.Phase, l.ExitedAt, l.ExitCode = reconcile.PhaseExited, s.time(), 137
		l.Exits = reconcile.RecordExit(l.Exits, l.ExitedAt)
		l.Message = "exited with code 137"
	}
	n.epoch++
	s.kick(n)
}

// killProcess ends a process at once, failing its calls: a fault.
func (s *world) killProcess(c *ctr) {
	c.exits++
	c.gen++
	c.proc = procDead
	c.runningSince = -1
	c.faultCrash = true
	s.killCalls(c, false)
}

// gwTable is the gateway's table: the node's view of the registry with its
// own containers overlaid by the agent's local state (as of the agent's
// last plan, whose in-flight counts decide a version's drained state), by
// reconcile.Overlay, as Agent.rebuildTableLocked builds it.
//
// The table is reduced to what routing.Admit reads for a call naming one of
// the node's own containers, which is every call a gateway gets here: the
// node's containers, and per version up to one usable container elsewhere,
// so that the rule sees the same candidates. Its decisions are those of the
// full table; it is rebuilt only when the node's view or local state
// changes, and its versions' target lists are a few entries long rather
// than thousands (Admit looks a named container up by a linear scan).
func (s *world) gwTable(n *simNode) *routing.Table {
	v := s.nodeView(n)
	if v == nil {
		return nil
	}
	if n.gwView == v.idx && n.gwEpoch == n.epoch && n.gwTable != nil {
		return n.gwTable
	}
	n.gwView, n.gwEpoch = v.idx, n.epoch
	mine := v.byNode[n.idx]
	cs := make([]api.Container, 0, len(mine)+4)
	for _, ci := range mine {
		c := v.ctrs[ci]
		c.Status = reconcile.Overlay(&c, n.local[c.ID], v.versions)
		cs = append(cs, c)
	}
	nodeIDs := []string{n.id}
	for _, rp := range v.repsOf() {
		for _, id := range rp.ids {
			vc := viewContainer(v, id)
			if vc == nil || vc.Node == n.id {
				continue
			}
			if !slices.ContainsFunc(cs, func(x api.Container) bool { return x.ID == id }) {
				cs = append(cs, *vc)
			}
			if !slices.Contains(nodeIDs, vc.Node) {
				nodeIDs = append(nodeIDs, vc.Node)
			}
			break
		}
	}
	ns := make([]api.Node, 0, len(nodeIDs))
	for _, id := range nodeIDs {
		if i, ok := v.nodeIdx[id]; ok {
			ns = append(ns, v.nodes[i])
		}
	}
	n.gwTable = routing.NewTable(v.services, cs, ns)
	return n.gwTable
}
