package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/coexist-dev/coexist/routing"
)

// censusTTL is how long a watcher stays live after its last request: the
// registry's default census_ttl (docs/design-notes.md).
const censusTTL = 10 * time.Second

// censusServers is how many servers the simulated registry has: each
// serves a share of the watchers, keeps their census (census.Local) and
// reports it to the leader (census.Fleet).
const censusServers = 3

// never is a time after every run.
const never = int64(1) << 62

// Tables a question of in force is about, as a bit set over census.Tables.
const (
	maskServices uint8 = 1 << iota
	maskContainers
	maskNodes
	maskAll = maskServices | maskContainers | maskNodes
)

// censusModel is the registry's census of watchers (docs/design.md §5),
// run by the same pure core the servers use: every client and agent is a
// watcher with a blocking query open on each table, acknowledging the
// publication it sees. The census is brought up to date when it is asked
// (a server reports on change, within milliseconds); between two
// questions nothing reads it.
type censusModel struct {
	locals [censusServers]*census.Local
	names  [censusServers]string
	fleet  *census.Fleet
	// firstReport is when each server's first report reaches the leader
	// that took office last.
	firstReport [censusServers]int64
	at          int64 // when the locals were last brought up to date, or -1
	// epoch changes when a watcher may catch up other than by its own
	// acknowledgements: a partition healed, a new leader.
	epoch uint32

	clInst []string
	clAck  []int32 // the publication the census has for a client; -2: not a watcher yet
	clVer  []uint16
	agInst []string // per node: its agent's instance, "" when none
	agAck  []int32
	agEnd  []int64 // when its agent's request ended (the agent died), or -1

	// memo holds the current leader's answers: true for good, false
	// until a lagging watcher can next acknowledge (or the census
	// completes), within one epoch.
	memo map[forceKey]forceMemo
	// ever is, per set of tables, the highest index found in force: the
	// checker's record, which outlives leaders.
	ever   [maskAll + 1]uint64
	wakeAt int64
}

type forceKey struct {
	index  uint64
	tables uint8
}

type forceMemo struct {
	yes   bool
	until int64
	epoch uint32
}

func (s *world) initCensus() {
	c := &s.cen
	for i := range c.locals {
		c.locals[i] = census.NewLocal(censusTTL)
		c.names[i] = "s" + strconv.Itoa(i+1)
	}
	c.fleet = census.NewFleet(s.time(), c.names[:], censusTTL)
	c.at, c.wakeAt = -1, -1
	n := len(s.cl.cohort)
	c.clInst = make([]string, n)
	c.clAck = make([]int32, n)
	c.clVer = make([]uint16, n)
	for i := range c.clAck {
		c.clAck[i] = -2
	}
	c.agInst = make([]string, len(s.nodes))
	c.agAck = make([]int32, len(s.nodes))
	c.agEnd = make([]int64, len(s.nodes))
	c.memo = map[forceKey]forceMemo{}
}

// ackOf is what a watcher seeing publication p has acknowledged of table
// i of census.Tables.
func (s *world) ackOf(p int32, i int) uint64 {
	if p < 0 {
		return 0
	}
	return s.reg.pubs[p].tidx[i]
}

func (c *censusModel) ack(s *world, srv int, id census.Identity, registered bool, p int32, t time.Time) {
	l := c.locals[srv]
	for i, tbl := range census.Tables {
		if registered {
			l.End(id.Instance, tbl, t)
		}
		l.Begin(id, tbl, s.ackOf(p, i), t)
	}
}

// censusRefresh brings the census up to date: each watcher whose view
// moved asks again with its new index, and every server that has reached
// the leader reports.
func (s *world) censusRefresh() {
	c := &s.cen
	if c.at == s.now {
		return
	}
	c.at = s.now
	t := s.time()
	for _, k := range s.cohorts {
		if s.now < k.started {
			continue
		}
		for ci := k.lo; ci < k.hi; ci++ {
			p := s.clientPub(ci)
			v := s.cl.ver[ci]
			if p == c.clAck[ci] && v == c.clVer[ci] {
				continue
			}
			if c.clInst[ci] == "" {
				c.clInst[ci] = "c" + strconv.Itoa(int(ci))
			}
			id := census.Identity{Instance: c.clInst[ci], Kind: census.KindClient, Name: k.spec.Name, Version: k.versions[v],
				Calls: k.callNames, Requires: k.spec.Requires}
			c.ack(s, int(ci)%censusServers, id, c.clAck[ci] != -2, p, t)
			c.clAck[ci], c.clVer[ci] = p, v
		}
	}
	for i, n := range s.nodes {
		if !n.up {
			continue
		}
		inst := "a" + strconv.Itoa(i) + "." + strconv.Itoa(int(n.gen))
		p := int32(-1)
		if v := s.nodeView(n); v != nil {
			p = v.idx
		}
		if inst == c.agInst[i] && p == c.agAck[i] {
			continue
		}
		id := census.Identity{Instance: inst, Kind: census.KindAgent, Name: census.AgentName, Version: n.id}
		c.ack(s, i%censusServers, id, inst == c.agInst[i], p, t)
		c.agInst[i], c.agAck[i], c.agEnd[i] = inst, p, -1
	}
	for i, l := range c.locals {
		if c.firstReport[i] <= s.now {
			c.fleet.Report(c.names[i], l.Report(t), t)
		}
	}
}

// clientPub is the publication client ci's watch has: the one it is cut
// off on, or the latest its delay lets it see.
func (s *world) clientPub(ci int32) int32 {
	if f := s.cl.frozen[ci]; f >= 0 {
		return f
	}
	s.cl.view[ci] = s.reg.viewAt(s.cl.view[ci], s.cl.delay[ci])
	return s.cl.view[ci]
}

// censusAgentDown ends the request of a node's agent as it dies: it stays
// live for censusTTL.
func (s *world) censusAgentDown(n *simNode) {
	c := &s.cen
	if c.agInst[n.idx] == "" {
		return
	}
	t := s.time()
	for _, tbl := range census.Tables {
		c.locals[int(n.idx)%censusServers].End(c.agInst[n.idx], tbl, t)
	}
	c.agEnd[n.idx] = s.now
}

// censusNewLeader: a new leader trusts no census until every server has
// reported (each within a second) or censusTTL has passed.
func (s *world) censusNewLeader() {
	c := &s.cen
	c.fleet = census.NewFleet(s.time(), c.names[:], censusTTL)
	for i := range c.firstReport {
		c.firstReport[i] = s.now + 1 + s.rnd.Int64N(int64(time.Second))
	}
	c.at = -1
	clear(c.memo)
	s.censusEpoch()
}

// censusEpoch says that a watcher may have caught up other than by its own
// acknowledgement: every answer held back is asked again.
func (s *world) censusEpoch() {
	s.cen.epoch++
	s.censusWake(s.now)
	s.reg.wakeLeader(s.now)
}

func (s *world) tableIndexes(mask uint8) map[string]uint64 {
	out := make(map[string]uint64, 3)
	for i, tbl := range census.Tables {
		if mask&(1<<i) != 0 {
			out[tbl] = s.reg.store.Index(stateTables[i])
		}
	}
	return out
}

var stateTables = [3]state.Table{state.TableServices, state.TableContainers, state.TableNodes}

// inForce is the leader's question: is the change at index to the given
// tables in force now (census.Fleet.InForce)? When not, until is the
// earliest time the answer may change without an epoch: when the slowest
// lagging watcher sees a publication that has the change, a dead one
// leaves the census, or the census completes. Without a leader nothing is
// in force.
func (s *world) inForce(index uint64, tables uint8) (ok bool, until int64) {
	c := &s.cen
	if s.reg.leaderLost {
		return false, never
	}
	k := forceKey{index, tables}
	if m, seen := c.memo[k]; seen && (m.yes || (m.epoch == c.epoch && s.now < m.until)) {
		return m.yes, m.until
	}
	s.censusRefresh()
	t := s.time()
	ok, lag := c.fleet.InForce(index, s.tableIndexes(tables), t)
	m := forceMemo{yes: ok, epoch: c.epoch, until: never}
	if ok {
		c.ever[tables] = max(c.ever[tables], index)
	} else {
		m.until = s.censusNext(lag)
	}
	c.memo[k] = m
	s.tr.word(index<<9 | uint64(tables)<<1 | b2u(ok))
	return ok, m.until
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// wasInForce is the checker's question: has the change at index to the
// tables been found in force, by this leader or an earlier one?
func (s *world) wasInForce(index uint64, tables uint8) bool {
	if index <= s.cen.ever[tables] {
		return true
	}
	ok, _ := s.inForce(index, tables)
	return ok
}

// censusNext is when an answer held back by lag may change.
func (s *world) censusNext(lag []census.Lagging) int64 {
	c := &s.cen
	if !c.fleet.Complete(s.time()) {
		next := s.now + int64(censusTTL) // at the latest: the ttl since the leader took office
		for _, t := range c.firstReport {
			if t > s.now {
				next = min(next, t)
			}
		}
		return next
	}
	next := s.now
	for _, l := range lag {
		next = max(next, s.nextAck(l))
		if next >= never {
			return never
		}
	}
	return next + 1
}

// nextAck is when a lagging watcher acknowledges what it lacks, or leaves
// the census.
func (s *world) nextAck(l census.Lagging) int64 {
	ti := slices.Index(census.Tables, l.Table)
	var delay int64
	switch {
	case strings.HasPrefix(l.Instance, "c"):
		ci, _ := strconv.Atoi(l.Instance[1:])
		if s.cl.frozen[ci] >= 0 {
			return never // until the partition heals: an epoch
		}
		delay = s.cl.delay[ci]
	default:
		ni, _ := strconv.Atoi(l.Instance[1:strings.IndexByte(l.Instance, '.')])
		n := s.nodes[ni]
		if s.cen.agInst[ni] != l.Instance || !n.up {
			if end := s.cen.agEnd[ni]; end >= 0 && s.cen.agInst[ni] == l.Instance {
				return end + int64(censusTTL)
			}
			return s.now + int64(censusTTL)
		}
		if n.frozen >= 0 {
			return never
		}
		delay = n.delay
	}
	pubs := s.reg.pubs
	i, _ := slices.BinarySearchFunc(pubs, l.Need, func(p *pub, need uint64) int {
		if p.tidx[ti] < need {
			return -1
		}
		return 1
	})
	if i == len(pubs) {
		// Not published yet: look again at the next publication.
		return max(s.now, s.reg.lastPubAt+int64(s.sc.Registry.PublishInterval)) + delay
	}
	return pubs[i].at + delay
}

// censusWake schedules a look at the changes waiting to be in force.
func (s *world) censusWake(t int64) {
	c := &s.cen
	if len(s.unseen) == 0 || (c.wakeAt >= 0 && c.wakeAt <= t && c.wakeAt >= s.now) {
		return
	}
	c.wakeAt = t
	s.schedule(t, evCensus, 0, 0, 0, nil)
}

// rangesPublished marks the range changes publication p carries, and
// looks at them when every watcher can have seen it.
func (s *world) rangesPublished(p *pub) {
	for _, ref := range s.unseen {
		e := &s.vers[ref[0]].ranges[ref[1]]
		if e.pubAt < 0 && p.index >= e.index {
			e.pubAt = p.at
		}
	}
	s.censusWake(p.at + s.watchDelay)
}

// onCensus records when each range change became in force by the census
// (docs/design.md §9, invariant 1: a call is judged by the ranges in force
// when it began).
func (s *world) onCensus() {
	s.cen.wakeAt = -1
	next := never
	keep := s.unseen[:0]
	for _, ref := range s.unseen {
		e := &s.vers[ref[0]].ranges[ref[1]]
		if e.pubAt >= 0 {
			ok, until := s.inForce(e.index, maskServices)
			if ok {
				e.seenAt = s.now
				continue
			}
			next = min(next, until)
		}
		keep = append(keep, ref)
	}
	s.unseen = keep
	if next < never {
		s.censusWake(next)
	}
}

// refused is the registry's no-stranding check on a step (docs/design.md
// §5): a retirement or a narrowing that would leave a live cohort with no
// candidate is refused unless the step forces it; the refusal goes in the
// summary.
func (s *world) refused(a Action, ch census.Change, force bool) bool {
	rec := s.reg.store.Version(state.VersionKey{Service: ch.Service, Version: ch.Version})
	switch {
	case force || rec == nil:
		return false
	case ch.Retire && rec.State != api.VersionActive:
		return false
	case !ch.Retire && (rec.State == api.VersionRetired || rec.Clients == ch.Clients):
		return false
	}
	s.censusRefresh()
	t := s.time()
	cohorts := census.Cohorts(s.cen.fleet.Watchers(t, s.tableIndexes(maskAll)))
	services, ctrs, nodes := s.reg.apiState()
	stranded := s.hooks.Stranded(services, ctrs, nodes, cohorts, ch)
	if len(stranded) == 0 {
		return false
	}
	err := &census.StrandedError{Change: ch, Cohorts: stranded}
	s.res.Refused = append(s.res.Refused, fmt.Sprintf("%s: %s: %s", time.Duration(s.now), a.Describe(), err))
	s.tr.str("refused " + a.Describe())
	return true
}

// apiState is the committed state as the registry's API answers it.
func (r *registry) apiState() ([]api.Service, []api.Container, []api.Node) {
	_, vs, _ := r.store.Versions("")
	_, cs, _ := r.store.Containers("")
	_, ns, _ := r.store.Nodes()
	ctrs := make([]api.Container, len(cs))
	for i, c := range cs {
		ctrs[i] = c.API(false)
	}
	nodes := make([]api.Node, len(ns))
	for i, n := range ns {
		nodes[i] = n.API()
	}
	return state.ServicesAPI(vs), ctrs, nodes
}

// routed is a live cohort's clients on one version, routed to a service
// version.
type routed struct {
	cohort int32
	ver    uint16
	svc    int32
	target int32 // version id
	active bool  // the route was to the version while it was active
}

// strandBefore lists, before cmd commits, the live cohorts that cmd may
// take their route from: those routed to a version it starts or ends
// retiring, or whose range it changes (docs/design.md §9, invariant 6).
func (s *world) strandBefore(cmd state.Command) []routed {
	var targets []int32
	switch c := cmd.(type) {
	case *state.RetireVersion:
		rec := s.reg.store.Version(state.VersionKey{Service: c.Service, Version: c.Version})
		if id, ok := s.verByRef[c.Service+"@"+c.Version]; ok && rec != nil && rec.State == api.VersionActive {
			targets = append(targets, id)
		}
	case *state.MarkRetired:
		for _, d := range c.Versions {
			if id, ok := s.verByRef[d.Service+"@"+d.Version]; ok {
				targets = append(targets, id)
			}
		}
	case *state.DeclareVersion:
		rec := s.reg.store.Version(state.VersionKey{Service: c.Service, Version: c.Version})
		if id, ok := s.verByRef[c.Service+"@"+c.Version]; ok && rec != nil && rec.State != api.VersionRetired && rec.Clients != c.Clients {
			targets = append(targets, id)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	t := routing.NewTable(s.reg.apiState())
	var out []routed
	for _, k := range s.cohorts {
		if s.now < k.started || k.n() == 0 {
			continue
		}
		for cv := range k.versions {
			if !s.cohortOn(k, uint16(cv)) {
				continue
			}
			rc := s.routingClient(k, uint16(cv), -1)
			for _, svc := range k.calls {
				r, err := routing.Select(t, *rc, s.services[svc].name, nil)
				if err != nil {
					continue
				}
				for _, id := range targets {
					if v := s.vers[id]; v.svc == svc && v.version == r.Version {
						out = append(out, routed{k.idx, uint16(cv), svc, id, r.State == api.VersionActive})
					}
				}
			}
		}
	}
	return out
}

// cohortOn reports whether any client of k is on version index v.
func (s *world) cohortOn(k *cohort, v uint16) bool {
	for ci := k.lo; ci < k.hi; ci++ {
		if s.cl.ver[ci] == v {
			return true
		}
	}
	return false
}

// strandAfter checks, after the command committed, that no cohort routed
// before lost its last candidate, unless a step forced it: it has no route
// now, or only a draining one where it had an active one (a draining
// version's containers drain and stop).
func (s *world) strandAfter(before []routed, forced bool) {
	t := routing.NewTable(s.reg.apiState())
	for _, b := range before {
		k := s.cohorts[b.cohort]
		v := s.vers[b.target]
		if forced || v.forcedAt >= 0 {
			continue
		}
		rc := s.routingClient(k, b.ver, -1)
		if r, err := routing.Select(t, *rc, s.services[b.svc].name, nil); err == nil && (r.State == api.VersionActive || !b.active) {
			continue
		}
		s.violate(NoStranding, "commit", fmt.Sprintf("live cohort %s@%s lost its last candidate for %s when %s changed, and no step forced it",
			k.spec.Name, k.versions[b.ver], s.services[b.svc].name, v.ref))
	}
}
