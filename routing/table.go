package routing

import (
	"cmp"
	"math/bits"
	"slices"
	"strings"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
)

// Table is an immutable snapshot of what routing needs from the registry:
// every service version with its parsed version and client range, and for
// each version the containers able to serve it. Build it once per registry
// change with NewTable and share it: it is safe for concurrent use and
// nothing in it changes after NewTable returns.
type Table struct {
	services   map[string]*service
	containers map[string]*containerInfo
}

// Target is one container able to serve a route and where to reach it.
type Target struct {
	ID       string
	Node     string
	Gateway  string // the gateway of Node
	Endpoint string // the container's own loopback endpoint, as reported
	Inflight int    // as last reported for this service version
}

type service struct {
	name     string
	versions []serviceVersion // highest first
	// hot holds, in the same order, what choose reads of each version, packed
	// so that a scan touches a few cache lines rather than one per version.
	hot []hotVersion
}

type hotVersion struct {
	admits *matcher
	key    *vkey
	n      int32 // usable containers
	kind   stateKind
}

type stateKind uint8

const (
	stateOther stateKind = iota
	stateActive
	stateDraining
	stateRetired
)

type serviceVersion struct {
	// What a Route copies and reads, first, so that it shares cache lines.
	raw     string   // the version as declared
	state   string   // as declared: active, draining, retired
	clients string   // admits.text
	admits  *matcher // the clients range; shared by versions with the same text
	// targets are the usable containers, grouped by node: the containers of
	// one node are one run, best first (fewer in-flight, then id). runs,
	// sorted by node key, say where each run is; byLoad lists targets best
	// first regardless of node.
	targets []Target
	runs    []nodeRun
	byLoad  []int32
	// pos finds a target by container id when there are many (a gateway
	// re-checks every named container); nil for a few, which a scan finds
	// faster.
	pos map[string]int32

	kind stateKind
	ver  *version.Version
	key  *vkey // shared by every version with the same text
	// unusable are containers that hold the version but cannot serve it now.
	unusable []ContainerCheck
}

// nodeRun is where the containers of one node are in targets.
type nodeRun struct {
	key    uint64 // nodeKey(node): runs are sorted by (key, node)
	node   string
	lo, hi int32
}

// nodeKey condenses a node name into a number that equal names share, so
// that finding a node's run compares integers and reads one string at most.
func nodeKey(s string) uint64 {
	var head, tail uint64
	for i := 0; i < len(s) && i < 8; i++ {
		head = head<<8 | uint64(s[i])
	}
	for i := max(8, len(s)-8); i < len(s); i++ {
		tail = tail<<8 | uint64(s[i])
	}
	return head ^ bits.RotateLeft64(tail*0x9e3779b97f4a7c15, 31) ^ uint64(len(s))<<56
}

// containerInfo keeps what Admit needs to explain a refusal.
type containerInfo struct {
	refs []api.ServiceRef
}

// NewTable builds a Table. Every version and range is parsed here, once;
// identical ranges share one parse. Input the registry would have rejected
// never panics: a version that does not parse is left out, a range that does
// not parse admits no client, a container naming a version that is not
// declared serves nothing, and of two entries with the same identity the
// first wins. The inputs are not retained.
func NewTable(services []api.Service, containers []api.Container, nodes []api.Node) *Table {
	t := &Table{
		services:   make(map[string]*service, len(services)),
		containers: make(map[string]*containerInfo, len(containers)),
	}

	type parsed struct {
		v   *version.Version
		key *vkey
	}
	versions := make(map[string]*parsed)
	ranges := make(map[string]*matcher)
	declared := make(map[api.ServiceRef]bool)

	// The names, copied into one string, sit together in memory: a map
	// lookup compares the name it finds, and the names of 50 services then
	// take a few cache lines rather than one each.
	var all strings.Builder
	for _, s := range services {
		all.WriteString(s.Name)
	}
	names := all.String()
	for _, s := range services {
		name := names[:len(s.Name)]
		names = names[len(s.Name):]
		svc := t.services[name]
		if svc == nil {
			svc = &service{name: name}
			t.services[name] = svc
		}
		for _, sv := range s.Versions {
			ref := api.ServiceRef{Service: s.Name, Version: sv.Version}
			if declared[ref] {
				continue
			}
			p := versions[sv.Version]
			if p == nil {
				v, err := version.NewVersion(sv.Version)
				if err != nil {
					continue
				}
				k := keyOf(v)
				p = &parsed{v: v, key: &k}
				versions[sv.Version] = p
			}
			declared[ref] = true
			m := ranges[sv.Clients]
			if m == nil {
				m = newMatcher(sv.Clients)
				ranges[sv.Clients] = m
			}
			svc.versions = append(svc.versions, serviceVersion{
				raw:     sv.Version,
				state:   sv.State,
				clients: sv.Clients,
				kind:    kindOf(sv.State),
				ver:     p.v,
				key:     p.key,
				admits:  m,
			})
		}
	}
	// Pointers into svc.versions are taken only once it is sorted.
	index := make(map[api.ServiceRef]*serviceVersion, len(declared))
	for _, svc := range t.services {
		slices.SortStableFunc(svc.versions, func(a, b serviceVersion) int {
			if c := compareKeys(b.key, a.key); c != 0 { // b.ver.Compare(a.ver)
				return c
			}
			// Equal precedence ("1.2.0" and "1.2.0+build"): the greater
			// string first, so the order does not depend on the input's.
			return cmp.Compare(b.raw, a.raw)
		})
		for i := range svc.versions {
			v := &svc.versions[i]
			index[api.ServiceRef{Service: svc.name, Version: v.raw}] = v
		}
	}

	nodeByID := make(map[string]*api.Node, len(nodes))
	for i := range nodes {
		if _, ok := nodeByID[nodes[i].ID]; !ok {
			nodeByID[nodes[i].ID] = &nodes[i]
		}
	}

	for i := range containers {
		c := &containers[i]
		if _, ok := t.containers[c.ID]; ok {
			continue
		}
		t.containers[c.ID] = &containerInfo{refs: slices.Clone(c.Services)}
		node := nodeByID[c.Node]
		for j, ref := range c.Services {
			v := index[ref]
			if v == nil || slices.Contains(c.Services[:j], ref) {
				continue
			}
			st := serviceStatus(c, ref)
			if why := unusable(c, node, st); why != "" {
				v.unusable = append(v.unusable, ContainerCheck{ID: c.ID, Node: c.Node, Reason: why})
				continue
			}
			// node.ID, not c.Node: one copy of each name, which local reads.
			tg := Target{ID: c.ID, Node: node.ID, Gateway: node.Gateway, Endpoint: c.Status.Endpoint}
			if st != nil {
				tg.Inflight = st.Inflight
			}
			v.targets = append(v.targets, tg)
		}
	}

	for _, svc := range t.services {
		for i := range svc.versions {
			v := &svc.versions[i]
			better := func(a, b Target) int {
				if c := cmp.Compare(a.Inflight, b.Inflight); c != 0 {
					return c
				}
				return cmp.Compare(a.ID, b.ID)
			}
			slices.SortFunc(v.targets, func(a, b Target) int {
				if c := cmp.Compare(nodeKey(a.Node), nodeKey(b.Node)); c != 0 {
					return c
				}
				if c := cmp.Compare(a.Node, b.Node); c != 0 {
					return c
				}
				return better(a, b)
			})
			for j, tg := range v.targets {
				if n := len(v.runs); n > 0 && v.runs[n-1].node == tg.Node {
					v.runs[n-1].hi++
					continue
				}
				v.runs = append(v.runs, nodeRun{key: nodeKey(tg.Node), node: tg.Node, lo: int32(j), hi: int32(j + 1)})
			}
			if len(v.targets) > indexAfter {
				v.pos = make(map[string]int32, len(v.targets))
				for j, tg := range v.targets {
					v.pos[tg.ID] = int32(j)
				}
			}
			v.byLoad = make([]int32, len(v.targets))
			for j := range v.byLoad {
				v.byLoad[j] = int32(j)
			}
			slices.SortFunc(v.byLoad, func(a, b int32) int { return better(v.targets[a], v.targets[b]) })
			svc.hot = append(svc.hot, hotVersion{admits: v.admits, key: v.key, n: int32(len(v.targets)), kind: v.kind})
			slices.SortFunc(v.unusable, func(a, b ContainerCheck) int { return cmp.Compare(a.ID, b.ID) })
		}
	}
	return t
}

func kindOf(state string) stateKind {
	switch state {
	case api.VersionActive:
		return stateActive
	case api.VersionDraining:
		return stateDraining
	case api.VersionRetired:
		return stateRetired
	}
	return stateOther
}

// serviceStatus is the container's reported status of one version it holds,
// or nil when it reported none.
func serviceStatus(c *api.Container, ref api.ServiceRef) *api.ServiceStatus {
	if c.Status == nil {
		return nil
	}
	for i := range c.Status.Services {
		if s := &c.Status.Services[i]; s.Service == ref.Service && s.Version == ref.Version {
			return s
		}
	}
	return nil
}

// unusable says why a container holding a version cannot serve it now, or
// returns "" when it can (docs/design.md §4, clause 3).
func unusable(c *api.Container, node *api.Node, st *api.ServiceStatus) string {
	switch {
	case c.Desired != api.DesiredPresent:
		return "being deleted (desired " + c.Desired + ")"
	case c.Status == nil:
		return "no status reported"
	case c.Status.State != api.ContainerRunning:
		return "state " + c.Status.State
	case node == nil:
		return "unknown node " + c.Node
	case node.Status != api.NodeReady:
		return "node " + c.Node + " " + node.Status
	case st != nil && st.State == api.ServiceDrained:
		return "drained"
	}
	return ""
}

// Services returns the names of the services in the table, sorted.
func (t *Table) Services() []string {
	if t == nil {
		return nil
	}
	names := make([]string, 0, len(t.services))
	for name := range t.services {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (t *Table) service(name string) *service {
	if t == nil {
		return nil
	}
	return t.services[name]
}

// local returns the run [lo, hi) of targets holding the containers on node.
func (v *serviceVersion) local(node string) (lo, hi int32) {
	if node == "" || len(v.runs) == 0 {
		return 0, 0
	}
	key := nodeKey(node)
	i, j := 0, len(v.runs)
	for i < j {
		m := int(uint(i+j) >> 1)
		if v.runs[m].key < key {
			i = m + 1
		} else {
			j = m
		}
	}
	for ; i < len(v.runs) && v.runs[i].key == key; i++ {
		if v.runs[i].node == node {
			return v.runs[i].lo, v.runs[i].hi
		}
	}
	return 0, 0
}

// indexAfter is the number of targets past which a version keeps an index
// of them by id.
const indexAfter = 16

// indexOf returns the position in targets of a usable container, or -1.
func (v *serviceVersion) indexOf(id string) int {
	if v.pos != nil {
		if i, ok := v.pos[id]; ok {
			return int(i)
		}
		return -1
	}
	for i := range v.targets {
		if v.targets[i].ID == id {
			return i
		}
	}
	return -1
}
