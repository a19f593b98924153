package sim

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/client/callpolicy"
	"github.com/coexist-dev/coexist/node/gateway/admit"
	"github.com/coexist-dev/coexist/node/inflight"
	"github.com/coexist-dev/coexist/routing"
)

// cohort is a group of clients; its clients are cl[lo:hi].
type cohort struct {
	idx      int32
	spec     CohortSpec
	lo, hi   int32
	versions []string
	keys     []int32 // client key per version index
	calls    []int32 // services called
	// callNames are their names, sorted: what its clients tell the census
	// they call.
	callNames []string
	// parsed[v][node+1]: the routing.Client of version index v on node
	// (index 0: not on a node), built on first use.
	parsed  [][]*routing.Client
	rate    float64
	gen     uint32
	started int64
}

func (c *cohort) n() int { return int(c.hi - c.lo) }

// clients holds every client, in arrays indexed by client number.
type clients struct {
	cohort []int32
	ver    []uint16 // index into the cohort's versions
	node   []int32  // -1: outside the fleet
	delay  []int64
	view   []int32 // cached publication index
	frozen []int32 // publication index while cut from the registry, or -1
	loaded []bool  // has loaded a table (NoClientRefresh freezes it then)
}

func (s *world) initClients() {
	total := 0
	for _, c := range s.sc.Cohorts {
		total += c.Clients
	}
	cl := &s.cl
	cl.cohort = make([]int32, total)
	cl.ver = make([]uint16, total)
	cl.node = make([]int32, total)
	cl.delay = make([]int64, total)
	cl.view = make([]int32, total)
	cl.frozen = make([]int32, total)
	cl.loaded = make([]bool, total)
	i := int32(0)
	for k, spec := range s.sc.Cohorts {
		c := &cohort{idx: int32(k), spec: spec, lo: i, hi: i + int32(spec.Clients), rate: spec.Rate}
		for _, svc := range spec.Calls {
			c.calls = append(c.calls, s.svcByName[svc])
		}
		c.callNames = slices.Sorted(slices.Values(spec.Calls))
		c.addVersion(s, spec.Version)
		for j := c.lo; j < c.hi; j++ {
			cl.cohort[j] = int32(k)
			cl.node[j] = -1
			if spec.OnNodes && len(s.nodes) > 0 {
				cl.node[j] = (j - c.lo) % int32(len(s.nodes))
			}
			cl.delay[j] = int64(s.sc.Registry.Propagation.Sample(s.rnd))
			cl.view[j] = -1
			cl.frozen[j] = -1
		}
		s.cohorts = append(s.cohorts, c)
		i = c.hi
	}
}

// addVersion returns the index of version v in the cohort, adding it.
func (c *cohort) addVersion(s *world, v string) uint16 {
	for i, x := range c.versions {
		if x == v {
			return uint16(i)
		}
	}
	c.versions = append(c.versions, v)
	c.keys = append(c.keys, s.clientKeyOf(c.spec.Name, v, c.spec.Requires, -1))
	c.parsed = append(c.parsed, make([]*routing.Client, len(s.nodes)+1))
	return uint16(len(c.versions) - 1)
}

// clientKeyOf interns a caller identity.
func (s *world) clientKeyOf(name, ver string, requires map[string]string, chainOf int32) int32 {
	for _, k := range s.ckeys {
		if k.name == name && k.version == ver && k.chainOf == chainOf && sameMap(k.requires, requires) {
			return k.id
		}
	}
	k := &clientKey{id: int32(len(s.ckeys)), name: name, version: ver, requires: requires, chainOf: chainOf,
		parsed: version.Must(version.NewVersion(ver))}
	if len(requires) > 0 {
		k.reqCons = map[string]version.Constraints{}
		for svc, r := range requires {
			k.reqCons[svc], _ = version.NewConstraint(r)
		}
	}
	s.ckeys = append(s.ckeys, k)
	return k.id
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func (s *world) cohortByName(name string) int32 {
	for _, c := range s.cohorts {
		if c.spec.Name == name {
			return c.idx
		}
	}
	return -1
}

// routingClient is the identity a client routes with.
func (s *world) routingClient(c *cohort, v uint16, nodeIdx int32) *routing.Client {
	p := c.parsed[v][nodeIdx+1]
	if p == nil {
		nodeID := ""
		if nodeIdx >= 0 {
			nodeID = s.nodes[nodeIdx].id
		}
		rc, err := routing.ParseClient(c.spec.Name, c.versions[v], c.spec.Requires, nodeID)
		if err != nil {
			panic(err) // validated
		}
		p = &rc
		c.parsed[v][nodeIdx+1] = p
	}
	return p
}

func (s *world) moveCohort(a MoveCohort) {
	c := s.cohorts[s.cohortByName(a.Cohort)]
	v := c.addVersion(s, a.Version)
	want := a.Count
	if want <= 0 {
		want = int(math.Round(a.Fraction * float64(c.n())))
	}
	for j := c.lo; j < c.hi && want > 0; j++ {
		if s.cl.ver[j] != v {
			s.cl.ver[j] = v
			want--
		}
	}
}

func (s *world) onCohortTick(c *cohort, gen uint32) {
	if gen != c.gen || c.rate <= 0 || c.n() == 0 {
		return
	}
	ci := c.lo + int32(s.rnd.IntN(c.n()))
	svc := c.calls[0]
	if len(c.calls) > 1 {
		svc = c.calls[s.rnd.IntN(len(c.calls))]
	}
	k := s.newCall()
	k.client = ci
	k.cohort = c.idx
	k.ckey = c.keys[s.cl.ver[ci]]
	k.rc = s.routingClient(c, s.cl.ver[ci], s.cl.node[ci])
	k.svc = svc
	k.from = cohortEP(c.idx)
	k.start = s.now
	k.deadline = s.now + int64(c.spec.Deadline)
	s.attempt(k)
	s.schedule(s.now+expInterval(s.rnd, c.rate*float64(c.n())), evCohortTick, c.idx, 0, c.gen, nil)
}

// call is one call, from its first attempt to its answer.
type call struct {
	id       uint64
	client   int32 // -1 for a call made by a service (a chain)
	cohort   int32
	ckey     int32
	rc       *routing.Client
	svc      int32
	from     endpoint
	viewNode int32 // chain calls see their node's view
	parent   *call
	child    int // next downstream call of the serving version
	start    int64
	deadline int64
	attempts int32

	// The nodes its attempts went to (the first few; more sets
	// triedMore), and whether a connection attempt was lost: what a
	// fault must have touched to excuse its failure.
	tried     [4]int32
	nTried    uint8
	triedMore bool
	lost      bool

	// policy is the SDK's own state of the call: which containers
	// refused it, the backoff (package callpolicy, the SDK's code).
	policy callpolicy.Call
	// po is what the last attempt came to, as the SDK would classify
	// the answer it got; reached says whether it reached a service.
	po      callpolicy.Outcome
	reached bool

	target int32 // container
	tnode  int32
	ver    int32 // version served
	pos    int32 // in the container's calls

	outcome    outcome
	reason     string
	answered   bool // the gateway or container answered this attempt
	done       bool // the caller has its answer
	drainKill  bool // killed by a stop after the drain timeout
	downstream bool // failed because a call it made failed
	children   int  // calls made by this one still running
	refs       int  // queued events that point to it
	ic         inflight.Call
	hops       uint8 // gateways that forwarded this attempt
}

type outcome uint8

const (
	outOK outcome = iota + 1
	outRetry
	outFail
)

func (s *world) newCall() *call {
	var k *call
	if n := len(s.callPool); n > 0 {
		k = s.callPool[n-1]
		s.callPool = s.callPool[:n-1]
	} else {
		k = new(call)
	}
	s.callSeq++
	k.id = s.callSeq
	k.client, k.viewNode, k.target, k.tnode, k.ver, k.pos = -1, -1, -1, -1, -1, -1
	return k
}

// maybeFree returns a call to the pool once nothing refers to it: its
// caller has the answer, no event points to it, no call it made runs, and no
// container counts it.
func (s *world) maybeFree(k *call) {
	if !k.done || k.refs > 0 || k.children > 0 || k.pos >= 0 || k.parent != nil {
		return
	}
	*k = call{}
	s.callPool = append(s.callPool, k)
}

// clientTable is the table a call is routed on: its client's own view, or
// for a chain the view of the node it runs on.
func (s *world) clientTable(k *call) *routing.Table {
	if k.client < 0 {
		v := s.nodeView(s.nodes[k.viewNode])
		if v == nil {
			return nil
		}
		return v.table()
	}
	v := s.clientView(k.client)
	if v == nil {
		return nil
	}
	return v.table()
}

// clientView is the publication client ci sees now.
func (s *world) clientView(ci int32) *pub {
	cl := &s.cl
	if f := cl.frozen[ci]; f >= 0 {
		return s.reg.pubs[f]
	}
	cl.view[ci] = s.reg.viewAt(cl.view[ci], cl.delay[ci])
	i := cl.view[ci]
	if i < 0 {
		return nil
	}
	if s.hooks.NoClientRefresh && !cl.loaded[ci] {
		cl.loaded[ci] = true
		cl.frozen[ci] = i
		s.reg.freeze(i)
	}
	return s.reg.pubs[i]
}

// attempt is one try of the SDK's RoundTrip: choose on the current table,
// pick a container the call has not been refused by, send.
func (s *world) attempt(k *call) {
	k.attempts++
	k.answered = false
	k.reached = false
	svc := s.services[k.svc].name
	t := s.clientTable(k)
	r, err := s.hooks.Router(t, *k.rc, svc, s.rnd)
	if err != nil || r.Len() == 0 {
		// No version serves the client by its table: the SDK answers at
		// once, without a network call.
		s.tr.word(uint64(k.id)<<8 | 0xee)
		k.outcome, k.reason = outFail, "no route"
		s.complete(k)
		return
	}
	tgt := k.policy.Pick(&r)
	ci, ok := s.ctrOf(&tgt)
	if !ok {
		k.outcome, k.reason = outFail, "unknown container"
		s.complete(k)
		return
	}
	c := s.ctrs[ci]
	k.target, k.tnode, k.hops = ci, c.node, 0
	k.tryNode(c.node)
	s.tr.word(uint64(k.id)<<24 | uint64(ci))
	n := s.nodes[c.node]
	cut := s.net.cut(k.from, nodeEP(c.node))
	switch {
	case cut || s.net.lost(s):
		k.lost = k.lost || !cut
		k.answered = true
		k.outcome, k.po, k.reason = outFail, callpolicy.NeverConnected, "connection never made"
		s.res.DialErrors++
		s.schedule(s.now+int64(s.sc.Network.DialTimeout), evReply, 0, 0, 0, k)
	case !n.up:
		k.answered = true
		k.outcome, k.po, k.reason = outFail, callpolicy.NeverConnected, "connection refused"
		s.res.DialErrors++
		s.schedule(s.now+2*s.net.sample(s), evReply, 0, 0, 0, k)
	default:
		s.schedule(s.now+s.net.sample(s), evArrive, 0, 0, 0, k)
	}
}

// tryNode notes a node an attempt went to.
func (k *call) tryNode(n int32) {
	for i := uint8(0); i < k.nTried; i++ {
		if k.tried[i] == n {
			return
		}
	}
	if int(k.nTried) == len(k.tried) {
		k.triedMore = true
		return
	}
	k.tried[k.nTried] = n
	k.nTried++
}

// triedNode reports whether an attempt of the call went to node n (every
// node, once it tried more than it keeps).
func (k *call) triedNode(n int32) bool {
	if k.triedMore {
		return true
	}
	for i := uint8(0); i < k.nTried; i++ {
		if k.tried[i] == n {
			return true
		}
	}
	return false
}

// arrive is the call reaching the gateway of its target's node: the
// gateway's admission, then the container.
func (s *world) arrive(k *call) {
	n := s.nodes[k.tnode]
	if !n.up {
		s.answer(k, outFail, callpolicy.NeverConnected, "connection refused")
		return
	}
	t := s.gwTable(n)
	if t == nil {
		s.answer(k, outFail, callpolicy.RefusedSafe, admit.NotReady().Err.Error())
		return
	}
	c := s.ctrs[k.target]
	ac := admit.Call{Client: s.gatewayClient(n, k.ckey), Service: s.services[k.svc].name, Container: c.id, Node: n.id}
	if k.hops > 0 {
		ac.Hops = strconv.Itoa(int(k.hops))
	}
	var v admit.Verdict
	if s.hooks.Admit == nil {
		v = admit.Decide(t, ac, s.rnd)
	} else if d, r, err := s.hooks.Admit(t, ac.Client, ac.Service, ac.Container, s.rnd); d == routing.DecisionForward && r.Len() == 0 {
		// A planted admission's way to forward to the named container.
		v.Decision = d
	} else {
		v = ac.Judge(d, r, err)
	}
	s.tr.word(uint64(k.id)<<8 | uint64(v.Decision))
	if ref := v.Refusal; ref != nil {
		po := callpolicy.Answered
		if ref.Retry {
			po = callpolicy.RefusedSafe
		}
		s.answer(k, outFail, po, ref.Err.Error())
		return
	}
	if v.Route.Len() > 0 {
		p := v.Route.Primary()
		id, ok := s.ctrOf(&p)
		if !ok {
			s.answer(k, outFail, callpolicy.Answered, "container "+p.ID+" unknown to the simulator")
			return
		}
		k.target = id
		if v.Remote {
			// The gateway forwards the call once to the gateway of the
			// container's node, naming it (Coexist-Hops: 1).
			to := s.ctrs[id].node
			if s.net.cut(nodeEP(n.idx), nodeEP(to)) || !s.nodes[to].up {
				s.answer(k, outFail, callpolicy.RefusedSafe, "gateway of node "+s.nodes[to].id+" unreachable")
				return
			}
			k.tnode, k.hops = to, k.hops+1
			s.schedule(s.now+s.net.sample(s), evArrive, 0, 0, 0, k)
			return
		}
		c = s.ctrs[id]
	}
	// The gateway dials the container's loopback endpoint.
	if c.proc != procUp && c.proc != procStopping {
		s.answer(k, outFail, callpolicy.RefusedSafe, "container "+c.id+" could not be dialled")
		return
	}
	j := -1
	for i, vid := range c.vers {
		if s.vers[vid].svc == k.svc {
			j = i
		}
	}
	if j < 0 {
		s.answer(k, outFail, callpolicy.Answered, "container "+c.id+" does not hold "+s.services[k.svc].name)
		return
	}
	k.ver = c.vers[j]
	if c.proc == procStopping {
		s.violate(Drained, fmt.Sprintf("admit call %d", k.id), fmt.Sprintf("the gateway of node %s admitted a call to container %s after its stop began",
			n.id, c.id))
	}
	s.checkCompatible(k)
	k.reached = true
	k.ic = n.inflight.Begin(c.id, c.keys[j])
	c.inflight[j]++
	c.total++
	k.pos = int32(len(c.calls))
	c.calls = append(c.calls, k)
	s.schedule(s.now+int64(s.vers[k.ver].serviceTime.Sample(s.rnd)), evDone, 0, 0, 0, k)
}

// gatewayClient is the caller as the gateway parses it from the call's
// headers: name, version and (Coexist-Client-Require) requirements, on the
// gateway's node.
func (s *world) gatewayClient(n *simNode, key int32) routing.Client {
	if int(key) < len(n.gwClients) && n.gwClients[key].Version != nil {
		return n.gwClients[key]
	}
	k := s.ckeys[key]
	c, err := routing.ParseClient(k.name, k.version, k.requires, n.id)
	if err != nil {
		panic(err) // validated
	}
	for len(n.gwClients) <= int(key) {
		n.gwClients = append(n.gwClients, routing.Client{})
	}
	n.gwClients[key] = c
	return c
}

// done is the container finishing its own work on a call: it calls the
// services its version calls, one after the other, then answers.
func (s *world) done(k *call) {
	if k.answered {
		return
	}
	v := s.vers[k.ver]
	if k.child < len(v.calls) {
		svc := v.calls[k.child]
		k.child++
		c := s.ctrs[k.target]
		ch := s.newCall()
		ch.parent = k
		ch.ckey = s.clientKeyOf(v.service, v.version, nil, v.id)
		ch.rc = s.chainClient(v, c.node)
		ch.svc = svc
		ch.from = nodeEP(c.node)
		ch.viewNode = c.node
		ch.start = s.now
		ch.deadline = k.deadline
		k.children++
		s.attempt(ch)
		return
	}
	s.release(k)
	s.answer(k, outOK, callpolicy.Answered, "")
}

// chainClient is a service version calling another service from a node.
func (s *world) chainClient(v *verInfo, nodeIdx int32) *routing.Client {
	key := v.ref + "|" + s.nodes[nodeIdx].id
	if c, ok := s.chainClients[key]; ok {
		return c
	}
	rc, err := routing.ParseClient(v.service, v.version, nil, s.nodes[nodeIdx].id)
	if err != nil {
		panic(err)
	}
	s.chainClients[key] = &rc
	return &rc
}

// release takes a call off its container's in-flight count.
func (s *world) release(k *call) {
	if k.pos < 0 {
		return
	}
	c := s.ctrs[k.target]
	last := len(c.calls) - 1
	if int(k.pos) != last {
		m := c.calls[last]
		c.calls[k.pos] = m
		m.pos = k.pos
	}
	c.calls[last] = nil
	c.calls = c.calls[:last]
	k.pos = -1
	k.ic.End()
	k.ic = inflight.Call{}
	for j, vid := range c.vers {
		if vid == k.ver {
			c.inflight[j]--
		}
	}
	c.total--
	if c.drainHeld || (c.total == 0 && c.draining) {
		s.kick(s.nodes[c.node])
	}
}

// killCalls fails every call in flight on a container whose process ended.
func (s *world) killCalls(c *ctr, drainTimeout bool) {
	for len(c.calls) > 0 {
		k := c.calls[len(c.calls)-1]
		s.release(k)
		reason := "connection reset: container " + c.id + " died"
		if drainTimeout {
			reason = "killed when the drain timeout of " + c.id + " passed"
			k.drainKill = true
		}
		// The gateway's connection to the container broke: the call
		// reached it, and may have done its work.
		s.answer(k, outFail, callpolicy.Broken, reason)
	}
}

// answer sends the gateway's answer back to the caller.
func (s *world) answer(k *call, o outcome, po callpolicy.Outcome, reason string) {
	if k.answered || k.done {
		return
	}
	k.answered = true
	k.outcome, k.po, k.reason = o, po, reason
	s.schedule(s.now+s.net.sample(s), evReply, 0, 0, 0, k)
}

// reply is an answer reaching the caller: done, or sent again as the SDK
// sends it again (package callpolicy: only what never reached a service,
// with its backoff, within the deadline).
func (s *world) reply(k *call) {
	if k.done {
		return
	}
	if k.outcome != outOK {
		pause, again := k.policy.RetryWith(s.hooks.Retryable, k.po, true, s.time(), epoch.Add(time.Duration(k.deadline)), s.rnd)
		if again {
			if k.reached {
				s.violate(AtMostOnce, fmt.Sprintf("retry call %d", k.id), fmt.Sprintf("call %d to %s is sent again after it reached container %s (%s: %s)",
					k.id, s.services[k.svc].name, s.ctrs[k.target].id, k.po, k.reason))
			}
			s.res.Retries++
			k.target, k.tnode = -1, -1
			s.schedule(s.now+int64(pause), evAttempt, 0, 0, 0, k)
			return
		}
		if callpolicy.Retryable(k.po) {
			k.reason = "deadline: " + k.reason
		}
	}
	s.complete(k)
}

// complete ends a call at its caller.
func (s *world) complete(k *call) {
	k.done = true
	s.tr.word(uint64(k.id)<<8 | uint64(k.outcome))
	s.record(k)
	if p := k.parent; p != nil {
		k.parent = nil
		p.children--
		switch {
		case p.answered:
		case k.outcome != outOK:
			s.release(p)
			s.answer(p, outFail, callpolicy.Answered, fmt.Sprintf("downstream call to %s failed: %s", s.services[k.svc].name, k.reason))
			p.downstream = true
		default:
			s.done(p)
		}
		s.maybeFree(p)
	}
	s.maybeFree(k)
}
