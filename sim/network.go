package sim

import "strings"

// endpoint is one end of a message: the registry, a node (its agent,
// gateway and the services in its containers), or a cohort's clients.
type endpoint struct {
	kind uint8
	id   int32
}

const (
	epKindRegistry uint8 = iota + 1
	epKindNode
	epKindCohort
)

var epRegistry = endpoint{kind: epKindRegistry}

func nodeEP(i int32) endpoint   { return endpoint{kind: epKindNode, id: i} }
func cohortEP(i int32) endpoint { return endpoint{kind: epKindCohort, id: i} }

// group is one side of a partition.
type group []endpoint // id -1: every endpoint of the kind

func (g group) has(e endpoint) bool {
	for _, x := range g {
		if x.kind == e.kind && (x.id < 0 || x.id == e.id) {
			return true
		}
	}
	return false
}

type cut struct {
	name  string
	a, b  group
	fault int
}

// network samples latencies and losses and knows the partitions in place.
type network struct {
	latency Dist
	loss    float64
	cuts    []cut
}

// sample draws a one-way latency.
func (n *network) sample(s *world) int64 { return int64(n.latency.Sample(s.rnd)) }

// lost draws whether a connection attempt is lost.
func (n *network) lost(s *world) bool { return n.loss > 0 && s.rnd.Float64() < n.loss }

// cut reports whether a partition separates x and y.
func (n *network) cut(x, y endpoint) bool {
	for i := range n.cuts {
		c := &n.cuts[i]
		if (c.a.has(x) && c.b.has(y)) || (c.a.has(y) && c.b.has(x)) {
			return true
		}
	}
	return false
}

func (s *world) parseGroup(names []string) group {
	var g group
	for _, e := range names {
		switch {
		case e == "registry":
			g = append(g, epRegistry)
		case e == "nodes":
			g = append(g, endpoint{kind: epKindNode, id: -1})
		case e == "clients":
			g = append(g, endpoint{kind: epKindCohort, id: -1})
		case strings.HasPrefix(e, "node:"):
			g = append(g, nodeEP(s.nodeByID[e[5:]]))
		case strings.HasPrefix(e, "cohort:"):
			g = append(g, cohortEP(s.cohortByName(e[7:])))
		}
	}
	return g
}

// partition puts a partition in place. Watchers it cuts from the registry
// keep the view they had.
func (s *world) partition(p Partition) {
	c := cut{name: p.Name, a: s.parseGroup(p.A), b: s.parseGroup(p.B)}
	c.fault = s.openFault("partition", p.Describe(), true, c.a, c.b)
	s.net.cuts = append(s.net.cuts, c)
	for _, n := range s.nodes {
		if n.frozen < 0 && s.net.cut(nodeEP(n.idx), epRegistry) {
			if v := s.nodeView(n); v != nil {
				n.frozen = v.idx
				s.reg.freeze(v.idx)
			}
		}
	}
	for _, k := range s.cohorts {
		if !s.net.cut(cohortEP(k.idx), epRegistry) {
			continue
		}
		for ci := k.lo; ci < k.hi; ci++ {
			if s.cl.frozen[ci] >= 0 {
				continue
			}
			if v := s.clientView(ci); v != nil && s.cl.frozen[ci] < 0 {
				s.cl.frozen[ci] = v.idx
				s.reg.freeze(v.idx)
			}
		}
	}
}

// heal ends a partition; watchers cut from the registry catch up.
func (s *world) heal(name string) {
	for i, c := range s.net.cuts {
		if c.name != name {
			continue
		}
		s.net.cuts = append(s.net.cuts[:i], s.net.cuts[i+1:]...)
		s.closeFault(c.fault)
		break
	}
	for _, n := range s.nodes {
		if n.frozen >= 0 && !s.net.cut(nodeEP(n.idx), epRegistry) {
			s.reg.thaw(n.frozen)
			n.frozen = -1
			if n.up {
				s.schedule(s.now+n.delay, evDeliver, n.idx, 0, n.gen, nil)
			}
		}
	}
	for _, k := range s.cohorts {
		if s.net.cut(cohortEP(k.idx), epRegistry) {
			continue
		}
		for ci := k.lo; ci < k.hi; ci++ {
			if f := s.cl.frozen[ci]; f >= 0 && !(s.hooks.NoClientRefresh && s.cl.loaded[ci]) {
				s.reg.thaw(f)
				s.cl.frozen[ci] = -1
			}
		}
	}
	s.censusEpoch()
}
