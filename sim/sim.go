package sim

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client/callpolicy"
	"github.com/coexist-dev/coexist/node/reconcile"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/coexist-dev/coexist/routing"
)

// Router is the client's choice: routing.Select unless a test plants
// another.
type Router func(t *routing.Table, c routing.Client, service string, rnd routing.Rand) (routing.Route, error)

// Admitter is the gateway's admission: admit.Decide, which runs
// routing.Admit, unless a test plants another, whose decision admit.Judge
// turns into the gateway's verdict. A DecisionForward with a zero Route forwards the call to the
// container it names.
type Admitter func(t *routing.Table, c routing.Client, service, container string, rnd routing.Rand) (routing.Decision, routing.Route, error)

// Planner is the node reconciler: reconcile.Plan unless a test plants another.
type Planner func(d reconcile.Desired, o reconcile.Observed, now time.Time, cfg reconcile.PlanConfig) []reconcile.Action

// RetireRule is the leader's rule of which due retirements wait until
// their draining state is in force: state.HoldUntilInForce unless a test
// plants another.
type RetireRule func(due []state.RetireDue, inForce func(index uint64) bool) (ready, held []state.RetireDue)

// StrandCheck is the registry's no-stranding check: census.Stranded unless
// a test plants another.
type StrandCheck func(services []api.Service, containers []api.Container, nodes []api.Node, cohorts []census.Cohort, ch census.Change) []census.Cohort

// Hooks are where tests plant bugs; the zero Hooks run the real cores.
type Hooks struct {
	RetireRule RetireRule
	Stranded   StrandCheck
	Router     Router
	Admit      Admitter
	Planner    Planner
	// NoClientRefresh makes every client keep the first table it loaded.
	NoClientRefresh bool
	// NoHeartbeats makes every agent register its node but never
	// heartbeat.
	NoHeartbeats bool
	// Retryable is the SDK's rule of which failed attempts may be sent
	// again; nil means callpolicy.Retryable.
	Retryable func(callpolicy.Outcome) bool
}

// Options configure one run.
type Options struct {
	Seed  uint64
	Hooks Hooks
	// MaxViolations bounds the violations of each invariant kept in the
	// Result (the counts are kept in full); 0 means 100.
	MaxViolations int
	// NoRecord skips what only a report needs: the per-step snapshots and
	// the chart.
	NoRecord bool
	// Progress, when set, is called every progressEvents events, for a
	// display of a long run's progress; it must not touch the run.
	Progress func(Progress)

	// recheck marks Check's second run, for Progress.
	recheck bool
}

// Progress is where a run is: its virtual time, the end of the run, the
// events so far, and whether it is Check's second run (of the same seed,
// to compare trace hashes).
type Progress struct {
	Seed         uint64
	Virtual, End time.Duration
	Events       uint64
	Recheck      bool
}

// progressEvents is how often Options.Progress is called.
const progressEvents = 1 << 14

// epoch is virtual time zero, as the cores see it.
var epoch = time.Date(2030, time.January, 1, 0, 0, 0, 0, time.UTC)

// world is one run of a scenario: everything the loop simulates. It is not
// safe for concurrent use; different worlds are independent.
type world struct {
	sc    *Scenario
	opt   Options
	hooks Hooks
	rnd   *rand.Rand
	q     queue
	tr    trace
	now   int64
	end   int64

	events uint64

	// Static tables, compiled from the scenario.
	services  []*svcInfo
	svcByName map[string]int32
	vers      []*verInfo
	verByRef  map[string]int32
	ctrs      []*ctr
	ctrByID   map[string]int32
	nodes     []*simNode
	nodeByID  map[string]int32
	cohorts   []*cohort
	cl        clients
	ckeys     []*clientKey
	steps     []Step

	reg        registry
	cen        censusModel
	net        network
	planCfg    reconcile.PlanConfig
	stale      int64 // G: the staleness bound of a watcher's view
	watchDelay int64 // the longest delay of a watcher behind a publication
	// unseen are the range changes some watcher may not have seen yet:
	// (version, index in its ranges).
	unseen       [][2]int32
	settle       int64
	faults       []FaultWindow
	compat       map[uint64]bool
	callSeq      uint64
	callPool     []*call
	chainClients map[string]*routing.Client

	// Convergence.
	lastChange   int64
	converged    bool
	convergedAt  int64
	convergeDone bool
	probeOn      bool

	res *Result
}

type svcInfo struct {
	idx      int32
	name     string
	versions []int32 // every version ever declared
}

type verInfo struct {
	id          int32
	svc         int32
	service     string
	version     string
	ref         string
	key         state.VersionKey
	parsed      *version.Version
	serviceTime Dist
	failsHealth bool
	calls       []int32
	releaseSet  int32
	holders     []int32
	// crashesAfter: its containers crash this long after becoming
	// healthy (VersionSpec.CrashesAfter).
	crashesAfter Dist

	// As committed.
	declared bool
	clients  string
	cons     version.Constraints
	state    string
	// ranges is every range committed, oldest first (cons is the last):
	// a call is judged by the ranges in force when it began.
	ranges []rangeEntry
	// forcedAt is when a step retired it with force, or -1.
	forcedAt int64
	// drainIndex is the index at which it last began draining.
	drainIndex uint64
}

// clientKey is one caller identity: a name, a version and requirements.
type clientKey struct {
	id       int32
	name     string
	version  string
	parsed   *version.Version
	requires map[string]string
	reqCons  map[string]version.Constraints
	// chainOf is the version this key is the caller of a chain for, or -1.
	chainOf int32
}

// newWorld compiles a scenario into a run, validating it first.
func newWorld(sc *Scenario, opt Options) (*world, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if opt.MaxViolations <= 0 {
		opt.MaxViolations = 100
	}
	s := &world{
		sc:        sc,
		opt:       opt,
		hooks:     opt.Hooks,
		rnd:       rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15)),
		tr:        newTrace(),
		svcByName: map[string]int32{},
		verByRef:  map[string]int32{},
		ctrByID:   map[string]int32{},
		nodeByID:  map[string]int32{},
		compat:    map[uint64]bool{},

		chainClients: map[string]*routing.Client{},
	}
	if s.hooks.Router == nil {
		s.hooks.Router = routing.Select
	}
	if s.hooks.Planner == nil {
		s.hooks.Planner = reconcile.Plan
	}
	if s.hooks.Retryable == nil {
		s.hooks.Retryable = callpolicy.Retryable
	}
	if s.hooks.RetireRule == nil {
		s.hooks.RetireRule = state.HoldUntilInForce
	}
	if s.hooks.Stranded == nil {
		s.hooks.Stranded = census.Stranded
	}
	a := sc.Agent
	s.planCfg = reconcile.PlanConfig{StartTimeout: a.StartTimeout, KillTimeout: a.KillTimeout,
		RestartDelay: a.RestartDelay, RestartMaxDelay: a.RestartMaxDelay, RestartAttempts: a.RestartAttempts,
		InflightReportInterval: a.InflightReportInterval}
	s.net.latency = sc.Network.Latency
	s.net.loss = sc.Network.Loss
	s.stale = int64(sc.Registry.PublishInterval + max(sc.Registry.Propagation.Max(), sc.Registry.NodePropagation.Max()) + 10*time.Millisecond)
	s.settle = int64(sc.FaultSettle)
	if s.settle == 0 {
		s.settle = int64(sc.Registry.HeartbeatTTL+sc.Registry.RetireInterval+2*sc.Registry.CommitLatency.Max()) + s.stale + int64(2*time.Second)
	}
	s.steps = slices.Clone(sc.Steps)
	slices.SortStableFunc(s.steps, func(a, b Step) int { return cmp.Compare(a.At, b.At) })

	s.compile()
	s.res = &Result{Scenario: sc.Name, Seed: opt.Seed, ConvergeBound: sc.ConvergeWithin,
		ViolationCounts: map[Invariant]int{}, FailedByReason: map[string]int64{}}
	for _, w := range sc.Warnings() {
		s.res.Warnings = append(s.res.Warnings, w.String())
	}
	s.reg.init(s)
	s.initClients()
	s.initCensus()

	last := sc.lastStep()
	s.end = int64(sc.Duration)
	if s.end == 0 {
		s.end = int64(last + sc.ConvergeWithin + 10*time.Second)
	}
	if !opt.NoRecord {
		s.res.Chart = newChart(s.end)
	}
	return s, nil
}

func (s *world) compile() {
	sc := s.sc
	for i, n := range sc.Nodes {
		s.nodeByID[n.ID] = int32(i)
		s.nodes = append(s.nodes, &simNode{idx: int32(i), id: n.ID, gateway: n.ID + ":7780",
			view: -1, frozen: -1, reconcileAt: -1})
	}
	addService := func(name string) int32 {
		if i, ok := s.svcByName[name]; ok {
			return i
		}
		i := int32(len(s.services))
		s.services = append(s.services, &svcInfo{idx: i, name: name})
		s.svcByName[name] = i
		return i
	}
	addVersion := func(vs VersionSpec) {
		if _, ok := s.verByRef[vs.Ref()]; ok {
			return
		}
		id := int32(len(s.vers))
		svc := addService(vs.Service)
		st := vs.ServiceTime
		if st.IsZero() {
			st = sc.Agent.ServiceTime
		}
		v := &verInfo{id: id, svc: svc, service: vs.Service, version: vs.Version, ref: vs.Ref(),
			key: state.VersionKey{Service: vs.Service, Version: vs.Version}, parsed: version.Must(version.NewVersion(vs.Version)),
			serviceTime: st, failsHealth: vs.FailsHealth, crashesAfter: vs.CrashesAfter, releaseSet: -1, forcedAt: -1}
		s.vers = append(s.vers, v)
		s.verByRef[vs.Ref()] = id
		s.services[svc].versions = append(s.services[svc].versions, id)
	}
	for _, vs := range sc.Versions {
		addVersion(vs)
	}
	for _, st := range s.steps {
		for _, a := range st.Actions {
			if d, ok := a.(DeclareVersion); ok {
				addVersion(d.VersionSpec)
			}
		}
	}
	// Calls are resolved once every service is known.
	specs := map[string]VersionSpec{}
	for _, vs := range sc.Versions {
		if _, ok := specs[vs.Ref()]; !ok {
			specs[vs.Ref()] = vs
		}
	}
	for _, st := range s.steps {
		for _, a := range st.Actions {
			if d, ok := a.(DeclareVersion); ok {
				if _, ok := specs[d.Ref()]; !ok {
					specs[d.Ref()] = d.VersionSpec
				}
			}
		}
	}
	for _, v := range s.vers {
		for _, c := range specs[v.ref].Calls {
			v.calls = append(v.calls, s.svcByName[c])
		}
	}
	for i, rs := range sc.ReleaseSets {
		for _, m := range rs.Members {
			s.vers[s.verByRef[m]].releaseSet = int32(i)
		}
	}
	addContainer := func(cs ContainerSpec) {
		idx := int32(len(s.ctrs))
		n := s.nodeByID[cs.Node]
		req := api.ContainerRequest{Node: cs.Node, Driver: "exec",
			Config: api.DriverConfig{Command: "/sim/" + cs.ID}, DrainTimeout: api.Duration(cs.DrainTimeout),
			Health: &api.HealthCheck{HTTP: "/healthz"}}
		c := &ctr{idx: idx, id: cs.ID, node: n, runningSince: -1, regChanged: -1,
			endpoint: endpointOf(idx)}
		for _, ref := range cs.Services {
			svc, ver, _ := splitRef(ref)
			req.Services = append(req.Services, api.ServiceRef{Service: svc, Version: ver})
			vid := s.verByRef[ref]
			c.vers = append(c.vers, vid)
			c.keys = append(c.keys, ref)
			s.vers[vid].holders = append(s.vers[vid].holders, idx)
			if s.vers[vid].failsHealth {
				c.failsHealth = true
			}
			if ca := s.vers[vid].crashesAfter; !ca.IsZero() && c.crashesAfter.IsZero() {
				c.crashesAfter = ca
			}
		}
		c.spec = state.SpecFromAPI(&req)
		c.drainTimeout = int64(c.spec.DrainTimeout)
		c.inflight = make([]int32, len(c.vers))
		s.ctrs = append(s.ctrs, c)
		s.ctrByID[cs.ID] = idx
		s.nodes[n].ctrs = append(s.nodes[n].ctrs, idx)
	}
	for _, cs := range sc.Containers {
		addContainer(cs)
	}
	for _, st := range s.steps {
		for _, a := range st.Actions {
			if d, ok := a.(AddContainer); ok {
				addContainer(d.ContainerSpec)
			}
		}
	}
}

// endpointOf is the loopback endpoint a container reports. The simulated
// driver numbers ports by container, from 21000 as the exec driver does,
// so that a target's endpoint names its container without a map look-up.
func endpointOf(idx int32) string { return "127.0.0.1:" + strconv.Itoa(21000+int(idx)) }

// ctrOf returns the container a routing target names.
func (s *world) ctrOf(t *routing.Target) (int32, bool) {
	e := t.Endpoint
	if i := strings.LastIndexByte(e, ':'); i >= 0 {
		n := 0
		for _, ch := range e[i+1:] {
			if ch < '0' || ch > '9' {
				n = -1
				break
			}
			n = n*10 + int(ch-'0')
		}
		if idx := int32(n - 21000); n >= 21000 && int(idx) < len(s.ctrs) && s.ctrs[idx].id == t.ID {
			return idx, true
		}
	}
	i, ok := s.ctrByID[t.ID]
	return i, ok
}

// time is the virtual now as the cores see it.
func (s *world) time() time.Time { return epoch.Add(time.Duration(s.now)) }

// schedule queues an event.
func (s *world) schedule(at int64, k evKind, a, b int32, gen uint32, c *call) {
	e := s.q.alloc()
	e.at, e.kind, e.a, e.b, e.gen, e.call = at, k, a, b, gen, c
	if c != nil {
		c.refs++
	}
	s.q.push(e)
}

// Run runs the scenario once with opt.Seed. It checks every invariant but
// determinism, which needs a second run: see Check.
func Run(sc *Scenario, opt Options) (*Result, error) {
	s, err := newWorld(sc, opt)
	if err != nil {
		return nil, err
	}
	s.run()
	return s.res, nil
}

// Check runs the scenario twice with opt.Seed and reports, besides the
// first run's findings, a violation of determinism when the two runs'
// trace hashes differ.
func Check(sc *Scenario, opt Options) (*Result, error) {
	if opt.MaxViolations <= 0 {
		opt.MaxViolations = 100
	}
	r1, err := Run(sc, opt)
	if err != nil {
		return nil, err
	}
	opt.recheck = true
	r2, err := Run(sc, opt)
	if err != nil {
		return nil, err
	}
	r1.DeterminismChecked = true
	if r1.TraceHash != r2.TraceHash {
		r1.addViolation(opt.MaxViolations, Violation{Invariant: Deterministic, At: r1.Virtual, Event: "end of run",
			Seed: opt.Seed, Detail: fmt.Sprintf("the same scenario and seed gave trace hashes %s and %s (events %d and %d)",
				hashHex(r1.TraceHash), hashHex(r2.TraceHash), r1.Events, r2.Events)})
	}
	return r1, nil
}

func (s *world) run() {
	start := time.Now()
	for i := range s.steps {
		s.schedule(int64(s.steps[i].At), evStep, int32(i), 0, 0, nil)
	}
	for _, n := range s.nodes {
		s.startNode(n, true)
		s.watchDelay = max(s.watchDelay, n.delay)
	}
	for _, d := range s.cl.delay {
		s.watchDelay = max(s.watchDelay, d)
	}
	// The initial fleet, declared at time 0 after the nodes registered.
	for _, v := range s.sc.Versions {
		s.reg.propose(entry{cmd: &state.DeclareVersion{Service: v.Service, Version: v.Version, Clients: v.Clients}})
	}
	for _, cs := range s.sc.Containers {
		c := s.ctrs[s.ctrByID[cs.ID]]
		s.reg.propose(entry{cmd: &state.PutContainer{ID: c.id, Spec: c.spec}})
	}
	for _, c := range s.cohorts {
		at := int64(c.spec.Start)
		if at == 0 {
			at = int64(s.sc.Warmup)
		}
		c.started = at
		s.schedule(at+expInterval(s.rnd, c.rate*float64(c.n())), evCohortTick, c.idx, 0, c.gen, nil)
	}
	s.schedule(s.end, evEnd, 0, 0, 0, nil)
	s.lastChange = int64(s.sc.lastStep())
	s.schedule(s.lastChange, evProbe, 0, 0, 0, nil)
	s.probeOn = true

loop:
	for s.q.len() > 0 {
		e := s.q.pop()
		s.now = e.at
		s.events++
		if s.opt.Progress != nil && s.events%progressEvents == 0 {
			s.opt.Progress(Progress{Seed: s.opt.Seed, Virtual: time.Duration(s.now), End: time.Duration(s.end), Events: s.events, Recheck: s.opt.recheck})
		}
		s.tr.word(uint64(e.at))
		s.tr.word(uint64(e.kind) | uint64(uint32(e.a))<<8 | uint64(uint32(e.b))<<40)
		switch e.kind {
		case evStep:
			s.runStep(int(e.a))
		case evCommit:
			s.reg.commit(e.gen)
		case evPublish:
			s.reg.publish()
		case evLeaderTick:
			s.reg.leaderTick(e.gen)
		case evLeaderBack:
			s.reg.leaderBack()
		case evDeliver:
			if n := s.nodes[e.a]; n.gen == e.gen {
				s.kick(n)
			}
		case evReconcile:
			s.onReconcile(s.nodes[e.a], e.gen, e.b)
		case evHealthy:
			s.onHealthy(s.ctrs[e.a], e.gen)
		case evExited:
			s.onExited(s.ctrs[e.a], e.gen)
		case evCrash:
			s.onCrash(s.ctrs[e.a], e.gen)
		case evHeartbeat:
			s.onHeartbeat(s.nodes[e.a], e.gen)
		case evBeatArrive:
			s.reg.beat(s.nodes[e.a])
		case evReportArrive:
			s.reg.reportArrive(s.ctrs[e.a], uint32(e.b))
		case evReportAck:
			s.onReportAck(s.ctrs[e.a], uint32(e.b), e.gen != 0)
		case evReportFail:
			s.onReportFail(s.ctrs[e.a], uint32(e.b))
		case evCohortTick:
			s.onCohortTick(s.cohorts[e.a], e.gen)
		case evAttempt:
			s.attempt(e.call)
		case evArrive:
			s.arrive(e.call)
		case evDone:
			s.done(e.call)
		case evReply:
			s.reply(e.call)
		case evProbe:
			s.probe()
		case evCensus:
			s.onCensus()
		case evEnd:
			s.q.release(e)
			break loop
		}
		if k := e.call; k != nil {
			k.refs--
			s.maybeFree(k)
		}
		s.q.release(e)
	}
	s.finish(time.Since(start))
}

// runStep carries out one step's actions, in order.
func (s *world) runStep(i int) {
	st := s.steps[i]
	if !s.opt.NoRecord {
		// The fleet as the previous step left it, just before this one.
		if i == 0 {
			s.snapshot(nil)
		} else {
			s.snapshot(&s.steps[i-1])
		}
	}
	for _, a := range st.Actions {
		s.tr.str(a.Describe())
		switch a := a.(type) {
		case DeclareVersion:
			if s.refused(a, census.Change{Service: a.Service, Version: a.Version, Clients: a.Clients}, a.Force) {
				continue
			}
			s.reg.propose(entry{cmd: &state.DeclareVersion{Service: a.Service, Version: a.Version, Clients: a.Clients}, force: a.Force})
		case RetireVersion:
			if s.refused(a, census.Change{Service: a.Service, Version: a.Version, Retire: true}, a.Force) {
				continue
			}
			if v := s.vers[s.verByRef[a.Service+"@"+a.Version]]; a.Force && v.forcedAt < 0 {
				v.forcedAt = s.now
			}
			s.reg.propose(entry{cmd: &state.RetireVersion{Service: a.Service, Version: a.Version, Now: s.time()}, force: a.Force})
		case AddContainer:
			c := s.ctrs[s.ctrByID[a.ID]]
			s.reg.propose(entry{cmd: &state.PutContainer{ID: c.id, Spec: c.spec}})
		case RemoveContainer:
			s.reg.propose(entry{cmd: &state.DeleteContainer{ID: a.ID}})
		case MoveCohort:
			s.moveCohort(a)
		case SetRate:
			c := s.cohorts[s.cohortByName(a.Cohort)]
			c.rate = a.Rate
			c.gen++
			if s.now >= c.started {
				s.schedule(s.now+expInterval(s.rnd, c.rate*float64(c.n())), evCohortTick, c.idx, 0, c.gen, nil)
			}
		case CrashNode:
			s.crashNode(s.nodes[s.nodeByID[a.Node]])
		case RestoreNode:
			s.restoreNode(s.nodes[s.nodeByID[a.Node]])
		case CrashContainer:
			s.crashContainer(s.ctrs[s.ctrByID[a.ID]])
		case Partition:
			s.partition(a)
		case Heal:
			s.heal(a.Name)
		case LoseLeader:
			s.reg.loseLeader(int64(a.For))
		case SetNetwork:
			if a.Latency != nil {
				s.net.latency = *a.Latency
			}
			if a.Loss != nil {
				s.net.loss = *a.Loss
			}
		}
	}
}

// openFault opens a fault window now; closeFault ends it (plus settle).
// A partition touches the links between a and b.
func (s *world) openFault(kind, what string, excuses bool, a, b group) int {
	s.faults = append(s.faults, FaultWindow{Kind: kind, What: what, From: time.Duration(s.now), To: -1, Excuses: excuses,
		node: -1, a: a, b: b})
	return len(s.faults) - 1
}

func (s *world) closeFault(i int) {
	s.faults[i].To = time.Duration(s.now + s.settle)
	s.extendConvergence(s.now)
}

// instantFault is a fault with no duration on node n: its window is
// [now, now+settle].
func (s *world) instantFault(kind, what string, n int32) {
	s.faults = append(s.faults, FaultWindow{Kind: kind, What: what, From: time.Duration(s.now), To: time.Duration(s.now + s.settle),
		Excuses: true, node: n})
	s.extendConvergence(s.now)
}

// extendConvergence moves the last change to t (the end of a fault after
// the last step).
func (s *world) extendConvergence(t int64) {
	if t > s.lastChange {
		s.lastChange = t
		s.converged = false
		s.convergeDone = false
		if !s.probeOn {
			s.probeOn = true
			s.schedule(t, evProbe, 0, 0, 0, nil)
		}
	}
}

// excuse reports whether a fault window overlapping call k's lifetime
// could have touched it, and counts the excuse against the first such.
func (s *world) excuse(k *call) bool {
	for i := range s.faults {
		f := &s.faults[i]
		if !f.Excuses {
			continue
		}
		end := int64(f.To)
		if f.To < 0 {
			end = 1<<62 - 1
		}
		if k.start <= end && s.now >= int64(f.From) && f.touches(k) {
			f.Excused++
			return true
		}
	}
	return false
}
