package sim

import (
	"reflect"
	"slices"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/coexist-dev/coexist/routing"
)

// entry is one write on its way through the registry's log.
type entry struct {
	cmd state.Command
	// leader marks the leader's own writes (retirements, node statuses):
	// the leader waits for each before its next pass, as Store.Apply does.
	leader bool
	// For a container status report: who reported it and the status.
	ctr    int32
	ngen   uint32
	report bool
	// force: a step forced it (docs/design.md §9, invariant 6).
	force bool
}

// registry is the simulated registry cluster: one real state store fed an
// ordered log. Writes commit in order after a sampled latency; during a
// leader-loss window they queue and commit when a new leader is elected.
// Committed state is published to watchers, coalesced per PublishInterval.
type registry struct {
	s     *world
	store *state.Store
	hb    *state.Heartbeats
	index uint64
	// commitAt[i] is when index i committed.
	commitAt []int64

	log       []entry // proposed, waiting for their commit event
	logHead   int
	pending   []entry // held while there is no leader
	lastAt    int64   // the commit time of the last entry scheduled
	commitGen uint32

	leaderLost   bool
	leaderBusy   int
	tickGen      uint32
	tickAt       int64
	leaderWindow int
	// nodes are the committed nodes as of nodesIndex, the index of the
	// nodes table: the leader looks at them every tick.
	nodes      []*state.Node
	nodesIndex uint64

	pubs         []*pub
	pubScheduled bool
	lastPubAt    int64
	gcFrom       int
	frozen       map[int32]int // publication index -> watchers frozen on it
	maxDelay     int64

	dirtyServices   bool
	dirtyContainers bool
	dirtyNodes      bool
	affectAll       bool
	affected        []bool // by node index
	apiCache        map[string]cachedContainer
}

type cachedContainer struct {
	rec *state.Container
	api api.Container
}

// pub is one publication: the committed state as watchers receive it.
type pub struct {
	idx   int32
	at    int64
	index uint64
	// tidx is the index of each table of census.Tables: what a watcher
	// seeing this publication acknowledges.
	tidx     [3]uint64
	services []api.Service
	versions map[string]string // "service@version" -> state
	ctrs     []api.Container
	byNode   [][]int32 // indexes into ctrs, by node index
	nodes    []api.Node
	byID     map[string]int32

	nodeIdx map[string]int32 // into nodes

	tbl  *routing.Table
	reps []rep // per service version, sorted
}

// rep lists up to three usable containers of a version, on distinct nodes.
type rep struct {
	ref string
	ids []string
}

func (r *registry) init(s *world) {
	r.s = s
	r.store = state.New()
	r.hb = state.NewHeartbeats(s.sc.Registry.HeartbeatTTL)
	r.commitAt = []int64{0}
	r.frozen = map[int32]int{}
	r.affected = make([]bool, len(s.nodes))
	r.apiCache = map[string]cachedContainer{}
	r.tickAt = -1
	r.lastPubAt = -1 << 62
	r.maxDelay = int64(max(s.sc.Registry.Propagation.Max(), s.sc.Registry.NodePropagation.Max()))
}

// propose sends a write to the leader.
func (r *registry) propose(e entry) {
	if e.leader {
		r.leaderBusy++
	}
	if r.leaderLost {
		r.pending = append(r.pending, e)
		return
	}
	r.enqueue(e)
}

func (r *registry) enqueue(e entry) {
	s := r.s
	at := max(s.now+int64(s.sc.Registry.CommitLatency.Sample(s.rnd)), r.lastAt)
	r.lastAt = at
	r.log = append(r.log, e)
	s.schedule(at, evCommit, 0, 0, r.commitGen, nil)
}

// commit applies the head of the log.
func (r *registry) commit(gen uint32) {
	if gen != r.commitGen || r.logHead >= len(r.log) {
		return
	}
	s := r.s
	e := r.log[r.logHead]
	r.log[r.logHead] = entry{}
	r.logHead++
	if r.logHead == len(r.log) {
		r.log, r.logHead = r.log[:0], 0
	}
	if e.leader {
		r.leaderBusy--
	}
	r.index++
	before := [3]uint64{r.store.Index(state.TableServices), r.store.Index(state.TableContainers), r.store.Index(state.TableNodes)}
	var old *state.Container
	if e.report {
		_, old, _ = r.store.Container(s.ctrs[e.ctr].id)
	}
	var strand []routed
	if !e.report {
		strand = s.strandBefore(e.cmd)
	}
	res := r.store.Apply(r.index, e.cmd)
	if e.report && res.Err == nil {
		r.statusCommitted(s.ctrs[e.ctr], old)
	}
	if len(strand) > 0 && res.Err == nil {
		s.strandAfter(strand, e.force)
	}
	r.commitAt = append(r.commitAt, s.now)
	s.tr.word(r.index<<8 | uint64(e.cmd.Type()))
	if res.Err != nil {
		s.tr.word(1)
		if !e.report && !e.leader {
			s.res.CommandErrors = append(s.res.CommandErrors, time.Duration(s.now).String()+": "+res.Err.Error())
		}
	}
	after := [3]uint64{r.store.Index(state.TableServices), r.store.Index(state.TableContainers), r.store.Index(state.TableNodes)}
	changed := false
	if after[0] != before[0] {
		r.dirtyServices, r.affectAll, changed = true, true, true
		r.versionsChanged(e.cmd)
	}
	if after[1] != before[1] {
		r.dirtyContainers, changed = true, true
		switch c := e.cmd.(type) {
		case *state.PutContainer:
			r.affect(c.Spec.Node)
			s.ctrs[s.ctrByID[c.ID]].regChanged = s.now
		case *state.DeleteContainer:
			r.affect(s.nodes[s.ctrs[s.ctrByID[c.ID]].node].id)
			s.ctrs[s.ctrByID[c.ID]].regChanged = s.now
		case *state.SetContainerStatus:
			if _, rec, _ := r.store.Container(c.ID); rec == nil {
				r.affect(c.Node) // reaped: its agent forgets it
			}
		case *state.PurgeNode:
			r.affectAll = true
		}
	}
	if after[2] != before[2] {
		r.dirtyNodes, changed = true, true
	}
	if changed {
		r.schedulePublish()
		r.wakeLeader(s.now + int64(20*time.Millisecond))
	}
	if e.leader && r.leaderBusy == 0 {
		r.wakeLeader(s.now)
	}
	if e.report {
		c := s.ctrs[e.ctr]
		n := s.nodes[c.node]
		ok := uint32(0)
		if res.Err == nil {
			ok = 1
		}
		if n.gen == e.ngen && !s.net.cut(epRegistry, nodeEP(n.idx)) {
			s.schedule(s.now+s.net.sample(s), evReportAck, e.ctr, int32(e.ngen), ok, nil)
		} else {
			s.schedule(s.now+s.net.sample(s), evReportFail, e.ctr, int32(e.ngen), 0, nil)
		}
	}
}

// statusCommitted accounts a container status report the store accepted;
// old is the record before it.
func (r *registry) statusCommitted(c *ctr, old *state.Container) {
	_, rec, _ := r.store.Container(c.id)
	if rec == old {
		return
	}
	if rec == nil || old == nil || old.Status == nil || rec.Status == nil {
		c.regChanged = r.s.now
		return
	}
	if displayOnly(old.Status, rec.Status) {
		r.s.res.InflightReports++
		return
	}
	c.regChanged = r.s.now
}

// displayOnly reports whether a status differs from the one before only
// in its calls in flight and calls per minute (and when it was recorded): such a report is for
// display (docs/design.md §6), and changes nothing a caller routes by.
func displayOnly(a, b *state.ContainerStatus) bool {
	x, y := *a, *b
	x.UpdatedAt, y.UpdatedAt = time.Time{}, time.Time{}
	x.Services, y.Services = withoutInflight(a.Services), withoutInflight(b.Services)
	return reflect.DeepEqual(x, y)
}

func withoutInflight(ss []state.ServiceStatus) []state.ServiceStatus {
	out := slices.Clone(ss)
	for i := range out {
		out[i].Inflight, out[i].CallsPerMinute = 0, 0
	}
	return out
}

func (r *registry) affect(nodeID string) {
	if i, ok := r.s.nodeByID[nodeID]; ok {
		r.affected[i] = true
	}
}

// versionsChanged refreshes the committed state the invariants read.
func (r *registry) versionsChanged(cmd state.Command) {
	s := r.s
	var keys []state.VersionKey
	switch c := cmd.(type) {
	case *state.DeclareVersion:
		keys = append(keys, state.VersionKey{Service: c.Service, Version: c.Version})
	case *state.RetireVersion:
		keys = append(keys, state.VersionKey{Service: c.Service, Version: c.Version})
	case *state.MarkRetired:
		for _, d := range c.Versions {
			keys = append(keys, state.VersionKey{Service: d.Service, Version: d.Version})
		}
	}
	for _, k := range keys {
		id, ok := s.verByRef[k.String()]
		if !ok {
			continue
		}
		v := s.vers[id]
		rec := r.store.Version(k)
		if rec == nil {
			continue
		}
		if rec.State == api.VersionDraining && v.state != api.VersionDraining {
			v.drainIndex = r.index
		}
		v.state = rec.State
		if !v.declared || v.clients != rec.Clients {
			v.declared = true
			v.clients = rec.Clients
			v.cons, _ = version.NewConstraint(rec.Clients)
			v.ranges = append(v.ranges, rangeEntry{cons: v.cons, at: s.now, index: r.index, pubAt: -1, seenAt: -1})
			if len(v.ranges) > 1 {
				// A first range replaces none: no call is judged by
				// when it came in force.
				s.unseen = append(s.unseen, [2]int32{v.id, int32(len(v.ranges) - 1)})
			}
			clear(s.compat)
		}
	}
}

// wakeLeader runs the leader's duties at t, unless they run sooner.
func (r *registry) wakeLeader(t int64) {
	if r.leaderLost {
		return
	}
	if r.tickAt >= 0 && r.tickAt <= t {
		return
	}
	r.tickGen++
	r.tickAt = t
	r.s.schedule(t, evLeaderTick, 0, 0, r.tickGen, nil)
}

// leaderTick is raftregistry's leaderTick: node statuses from heartbeat
// TTLs, then the retirements that are due; then it sleeps until the next
// deadline, at most RetireInterval.
func (r *registry) leaderTick(gen uint32) {
	if gen != r.tickGen || r.leaderLost {
		return
	}
	r.tickAt = -1
	if r.leaderBusy > 0 {
		return // woken again when its writes commit
	}
	s := r.s
	now := s.time()
	for _, c := range r.hb.StatusChanges(r.committedNodes(), now) {
		c := c
		r.propose(entry{cmd: &c, leader: true})
	}
	held := never
	due, _ := s.hooks.RetireRule(r.store.DueRetirements(now), func(index uint64) bool {
		ok, until := s.inForce(index, maskServices)
		held = min(held, until)
		return ok
	})
	if len(due) > 0 {
		r.propose(entry{cmd: &state.MarkRetired{Versions: due, Now: now}, leader: true})
	}
	if r.leaderBusy > 0 {
		return
	}
	// A retirement held back waits for the census to move.
	next := min(s.now+int64(s.sc.Registry.RetireInterval), held)
	if t, ok := r.hb.NextExpiry(); ok {
		next = min(next, max(int64(t.Sub(epoch)), s.now+int64(10*time.Millisecond)))
	}
	if t, ok := r.store.NextRetireDeadline(); ok {
		next = min(next, max(int64(t.Sub(epoch)), s.now+int64(10*time.Millisecond)))
	}
	r.wakeLeader(next)
}

// committedNodes are the committed nodes, read again from the store only
// when a write touched the nodes table (a write replaces a node, never
// changes it in place).
func (r *registry) committedNodes() []*state.Node {
	if i := r.store.Index(state.TableNodes); r.nodes == nil || i != r.nodesIndex {
		r.nodesIndex, r.nodes, _ = r.store.Nodes()
	}
	return r.nodes
}

// loseLeader starts a leader-loss window of length d.
func (r *registry) loseLeader(d int64) {
	s := r.s
	if r.leaderLost {
		return
	}
	r.leaderLost = true
	r.leaderWindow = s.openFault("leader-loss", "registry leader", false, nil, nil)
	// Writes not yet committed wait for the next leader, in order.
	r.pending = append(slices.Clone(r.log[r.logHead:]), r.pending...)
	r.log, r.logHead = r.log[:0], 0
	r.commitGen++
	r.tickGen++
	r.tickAt = -1
	s.schedule(s.now+d, evLeaderBack, 0, 0, 0, nil)
}

// leaderBack: a new leader gives every node a fresh TTL and commits what
// queued.
func (r *registry) leaderBack() {
	s := r.s
	r.leaderLost = false
	s.closeFault(r.leaderWindow)
	_, nodes, _ := r.store.Nodes()
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	r.hb.ResetAll(ids, s.time())
	r.lastAt = s.now
	p := r.pending
	r.pending = nil
	for _, e := range p {
		r.enqueue(e)
	}
	s.censusNewLeader()
	if r.leaderBusy == 0 {
		r.wakeLeader(s.now)
	}
}

// beat is a heartbeat reaching the registry.
func (r *registry) beat(n *simNode) {
	if r.leaderLost {
		return
	}
	r.hb.Beat(n.id, r.s.time())
}

// reportArrive is an agent's status report reaching the registry.
func (r *registry) reportArrive(c *ctr, ngen uint32) {
	s := r.s
	st := c.sending
	if st == nil {
		return
	}
	r.propose(entry{cmd: &state.SetContainerStatus{ID: c.id, Node: s.nodes[c.node].id, Status: state.StatusFromAPI(st, s.time())},
		ctr: c.idx, ngen: ngen, report: true})
}

func (r *registry) schedulePublish() {
	if r.pubScheduled {
		return
	}
	r.pubScheduled = true
	s := r.s
	r.s.schedule(max(s.now, r.lastPubAt+int64(s.sc.Registry.PublishInterval)), evPublish, 0, 0, 0, nil)
}

// publish answers the watchers with the committed state.
func (r *registry) publish() {
	s := r.s
	r.pubScheduled = false
	r.lastPubAt = s.now
	p := &pub{idx: int32(len(r.pubs)), at: s.now, index: r.index}
	for i, t := range stateTables {
		p.tidx[i] = r.store.Index(t)
	}
	var prev *pub
	if len(r.pubs) > 0 {
		prev = r.pubs[len(r.pubs)-1]
	}
	if prev == nil || r.dirtyServices {
		_, vs, _ := r.store.Versions("")
		p.services = state.ServicesAPI(vs)
		p.versions = make(map[string]string, len(vs))
		for _, v := range vs {
			p.versions[v.Service+"@"+v.Version] = v.State
		}
	} else {
		p.services, p.versions = prev.services, prev.versions
	}
	if prev == nil || r.dirtyNodes {
		_, ns, _ := r.store.Nodes()
		p.nodes = make([]api.Node, len(ns))
		p.nodeIdx = make(map[string]int32, len(ns))
		for i, n := range ns {
			p.nodes[i] = n.API()
			p.nodeIdx[n.ID] = int32(i)
		}
	} else {
		p.nodes, p.nodeIdx = prev.nodes, prev.nodeIdx
	}
	if prev == nil || r.dirtyContainers {
		_, cs, _ := r.store.Containers("")
		p.ctrs = make([]api.Container, len(cs))
		p.byNode = make([][]int32, len(s.nodes))
		p.byID = make(map[string]int32, len(cs))
		for i, c := range cs {
			cc, ok := r.apiCache[c.ID]
			if !ok || cc.rec != c {
				cc = cachedContainer{rec: c, api: c.API(false)}
				r.apiCache[c.ID] = cc
			}
			p.ctrs[i] = cc.api
			p.byID[c.ID] = int32(i)
			if n, ok := s.nodeByID[c.Spec.Node]; ok {
				p.byNode[n] = append(p.byNode[n], int32(i))
			}
		}
		if len(r.apiCache) > 2*len(cs)+64 {
			for id := range r.apiCache {
				if _, ok := p.byID[id]; !ok {
					delete(r.apiCache, id)
				}
			}
		}
	} else {
		p.ctrs, p.byNode, p.byID = prev.ctrs, prev.byNode, prev.byID
	}
	if prev != nil && !r.dirtyServices && !r.dirtyNodes && !r.dirtyContainers {
		p.tbl, p.reps = prev.tbl, prev.reps
	}
	r.dirtyServices, r.dirtyNodes, r.dirtyContainers = false, false, false
	r.pubs = append(r.pubs, p)
	s.tr.word(uint64(p.idx)<<32 | p.index)

	// Wake the agents whose desired state changed.
	for i, n := range s.nodes {
		if !r.affectAll && !r.affected[i] {
			continue
		}
		r.affected[i] = false
		if n.up && n.frozen < 0 {
			s.schedule(s.now+n.delay, evDeliver, n.idx, 0, n.gen, nil)
		}
	}
	r.affectAll = false
	r.gc()
	s.rangesPublished(p)
}

// gc drops the tables of publications no watcher can see any more: every
// watcher sees the latest publication at least maxDelay old, or one it is
// frozen on.
func (r *registry) gc() {
	horizon := r.s.now - r.maxDelay
	keep := r.gcFrom
	for keep+1 < len(r.pubs) && r.pubs[keep+1].at <= horizon {
		keep++
	}
	for i := r.gcFrom; i < keep; i++ {
		if r.frozen[int32(i)] > 0 {
			continue
		}
		p := r.pubs[i]
		p.release()
	}
	r.gcFrom = keep
}

// freeze and thaw count the watchers holding on to a publication.
func (r *registry) freeze(i int32) {
	if i >= 0 {
		r.frozen[i]++
	}
}

func (r *registry) thaw(i int32) {
	if i < 0 {
		return
	}
	if r.frozen[i]--; r.frozen[i] <= 0 {
		delete(r.frozen, i)
		if int(i) < r.gcFrom {
			p := r.pubs[i]
			p.release()
		}
	}
}

// release drops what a publication holds.
func (p *pub) release() {
	p.services, p.versions, p.ctrs, p.byNode, p.nodes, p.nodeIdx, p.byID, p.tbl, p.reps = nil, nil, nil, nil, nil, nil, nil, nil, nil
}

// latest is the last publication, or nil.
func (r *registry) latest() *pub {
	if len(r.pubs) == 0 {
		return nil
	}
	return r.pubs[len(r.pubs)-1]
}

// viewAt advances a watcher's cached publication index to the latest
// publication at most delay old.
func (r *registry) viewAt(cached int32, delay int64) int32 {
	horizon := r.s.now - delay
	i := int(cached)
	for i+1 < len(r.pubs) && r.pubs[i+1].at <= horizon {
		i++
	}
	return int32(i)
}

// table is the publication's routing table, built on first use and shared
// by every watcher that sees it.
func (p *pub) table() *routing.Table {
	if p.tbl == nil {
		p.tbl = routing.NewTable(p.services, p.ctrs, p.nodes)
	}
	return p.tbl
}

// repsOf returns, per service version, up to three usable containers on
// distinct nodes, as routing.Candidates reports them.
func (p *pub) repsOf() []rep {
	if p.reps != nil {
		return p.reps
	}
	p.reps = []rep{}
	t := p.table()
	for _, svc := range t.Services() {
		for _, cd := range routing.Candidates(t, routing.Client{}, svc) {
			var ids, seen []string
			for _, cc := range cd.Containers {
				if !cc.Usable || slices.Contains(seen, cc.Node) {
					continue
				}
				seen = append(seen, cc.Node)
				ids = append(ids, cc.ID)
				if len(ids) == 3 {
					break
				}
			}
			if len(ids) > 0 {
				p.reps = append(p.reps, rep{ref: svc + "@" + cd.Version, ids: ids})
			}
		}
	}
	return p.reps
}

// commitTime is when index i committed.
func (r *registry) commitTime(i uint64) int64 {
	if i < uint64(len(r.commitAt)) {
		return r.commitAt[i]
	}
	return 1 << 62
}
