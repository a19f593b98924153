package routing

import (
	"fmt"
	"strconv"
	"strings"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
)

// Rand is the source of the power-of-two choice. *math/rand/v2.Rand satisfies
// it; the simulator passes one seeded per run. A nil Rand always takes the
// least loaded container, which is deterministic but herds.
type Rand interface {
	IntN(n int) int
}

// Route is the answer of Select: one service version and its usable
// containers, the chosen one first and the rest as fallbacks for retries.
//
// Route refers to the Table it came from and copies nothing, so returning it
// allocates nothing; use Len and At, or Containers, which allocates, to walk
// the containers. The zero Route has no containers.
type Route struct {
	Service string
	Version string
	State   string // of the version: active, or draining
	Clients string // the range of the version

	v       *serviceVersion
	primary int32 // in v.targets
	lo, hi  int32 // the client's own node: v.targets[lo:hi]
	why     why

	client        string
	clientVersion *version.Version
	requirement   *matcher
}

// why records the reasons for a route's choices, rendered only by Reason.
type why uint8

const (
	whyDrainingOnly why = 1 << iota // no active candidate
	whyOwnNode                      // the primary is on the client's node
	whyTwoChoices                   // picked as the less loaded of two
	whyNamed                        // named by the call and admissible
)

// Select applies the routing rule of docs/design.md §4: of the versions of service
// whose client range admits c, that meet c's own requirement for service and
// that have at least one usable container, the highest active one, or when
// there is none the highest draining one. Its containers are ordered: c's own
// node first, the primary picked there (or anywhere when c's node has none)
// as the less loaded of two drawn from rnd.
//
// It fails with an error wrapping ErrUnknownService when the table does not
// know service, and with a *NoCompatibleError otherwise. Select does not
// allocate when it succeeds and c came from ParseClient or NewClient.
func Select(t *Table, c Client, service string, rnd Rand) (r Route, err error) {
	s := t.service(service)
	if s == nil {
		return Route{}, unknownService(service)
	}
	i, w, req := choose(s, &c)
	if i < 0 {
		return Route{}, noCompatible(s, &c)
	}
	// Built in place: a Route is a dozen words, and copies show.
	r.init(s, i, w, &c, req)
	r.pick(rnd)
	return r, nil
}

func unknownService(name string) error {
	return fmt.Errorf("%w %q", ErrUnknownService, name)
}

// choose returns the index in s.versions of the version the rule picks, or
// -1, and the client's requirement for the service, nil when it has none.
func choose(s *service, c *Client) (int, why, *matcher) {
	if c.Version == nil {
		return -1, 0, nil
	}
	key := c.key()
	req, hasReq := c.requirement(s.name)
	draining := -1
	for i := range s.hot {
		v := &s.hot[i]
		switch {
		case v.n == 0:
			continue
		case v.kind == stateActive:
		case v.kind == stateDraining && draining < 0:
		default:
			continue
		}
		if !v.admits.check(c.Version, key) {
			continue
		}
		if hasReq && !req.check(v.key.ver, v.key) {
			continue
		}
		if v.kind == stateActive {
			return i, 0, req
		}
		draining = i
	}
	return draining, whyDrainingOnly, req
}

func (r *Route) init(s *service, i int, w why, c *Client, req *matcher) {
	v := &s.versions[i]
	r.Service = s.name
	r.Version = v.raw
	r.State = v.state
	r.Clients = v.clients
	r.v = v
	r.why = w
	r.client = c.Name
	r.clientVersion = c.Version
	r.requirement = req
	r.lo, r.hi = v.local(c.Node)
}

// pick sets the primary: among the containers on the client's node if there
// are any, else among all, the less loaded of two drawn at random. Both pools
// are ordered best first, so the better of two positions is the lower.
func (r *Route) pick(rnd Rand) {
	if r.hi > r.lo {
		r.why |= whyOwnNode
		r.primary = r.lo + int32(r.twoChoices(int(r.hi-r.lo), rnd))
		return
	}
	r.primary = r.v.byLoad[r.twoChoices(len(r.v.targets), rnd)]
}

func (r *Route) twoChoices(n int, rnd Rand) int {
	if n <= 1 {
		return 0
	}
	r.why |= whyTwoChoices
	if rnd == nil {
		return 0
	}
	// One draw for an ordered pair of distinct positions.
	x := rnd.IntN(n * (n - 1))
	a, b := x/(n-1), x%(n-1)
	if b >= a {
		b++
	}
	return min(a, b)
}

// node returns the client's node when it holds containers of the route.
func (r *Route) node() (string, bool) {
	if r.hi <= r.lo {
		return "", false
	}
	return r.v.targets[r.lo].Node, true
}

func (r *Route) clientLabel() string {
	if r.clientVersion == nil {
		return clientLabel(r.client, "")
	}
	return clientLabel(r.client, r.clientVersion.Original())
}

// Len is the number of containers of the route.
func (r Route) Len() int {
	if r.v == nil {
		return 0
	}
	return len(r.v.targets)
}

// Primary is the chosen container, At(0). It panics on the zero Route.
func (r Route) Primary() Target { return r.v.targets[r.primary] }

// At returns the i-th container in order of preference: the primary, then the
// other containers on the client's node, then the rest, each group by
// in-flight count and then id. It panics unless 0 <= i < Len().
func (r Route) At(i int) Target {
	if i == 0 {
		return r.Primary()
	}
	if i < 0 || i >= r.Len() {
		panic("routing: Route.At index " + strconv.Itoa(i) + " out of range")
	}
	// The other containers of the client's node: targets[lo:hi] less the
	// primary.
	inRun := r.lo <= r.primary && r.primary < r.hi
	others := int(r.hi - r.lo)
	if inRun {
		others--
	}
	if i <= others {
		p := r.lo + int32(i-1)
		if inRun && p >= r.primary {
			p++
		}
		return r.v.targets[p]
	}
	i -= others
	for _, p := range r.v.byLoad {
		if p == r.primary || r.lo <= p && p < r.hi {
			continue
		}
		if i--; i == 0 {
			return r.v.targets[p]
		}
	}
	panic("routing: Route.At: unreachable")
}

// Containers returns every container of the route in order of preference. It
// allocates; the hot path uses Len and At.
func (r Route) Containers() []Target {
	out := make([]Target, r.Len())
	for i := range out {
		out[i] = r.At(i)
	}
	return out
}

// Reason explains the choice in words, for people: logs, `coexist route`,
// the provider's data source.
func (r Route) Reason() string {
	if r.v == nil {
		return ""
	}
	var b strings.Builder
	switch {
	case r.why&whyNamed != 0 && r.why&whyDrainingOnly != 0:
		b.WriteString("draining version of the named container, no active candidate, admitting client ")
	case r.why&whyNamed != 0:
		b.WriteString("active version of the named container admitting client ")
	case r.why&whyDrainingOnly != 0:
		b.WriteString("only draining candidates: highest draining version admitting client ")
	default:
		b.WriteString("highest active version admitting client ")
	}
	b.WriteString(r.clientLabel())
	if r.requirement != nil {
		b.WriteString(" and meeting its requirement ")
		b.WriteString(strconv.Quote(r.requirement.text))
	}
	b.WriteString("; container ")
	b.WriteString(r.Primary().ID)
	switch {
	case r.why&whyNamed != 0:
		b.WriteString(" named by the call")
	case r.why&whyOwnNode != 0:
		node, _ := r.node()
		b.WriteString(" on own node ")
		b.WriteString(node)
	}
	switch {
	case r.why&whyNamed != 0:
	case r.why&whyTwoChoices != 0:
		b.WriteString(", less loaded of two random choices")
	case r.why&whyOwnNode != 0:
		b.WriteString(", the only one there")
	default:
		b.WriteString(", the only one running")
	}
	return b.String()
}

// API converts the route to its wire form. It allocates.
func (r Route) API() api.Route {
	out := api.Route{
		Service:    r.Service,
		Version:    r.Version,
		State:      r.State,
		Clients:    r.Clients,
		Containers: make([]api.RouteContainer, 0, r.Len()),
		Reason:     r.Reason(),
	}
	for i := 0; i < r.Len(); i++ {
		t := r.At(i)
		out.Containers = append(out.Containers, api.RouteContainer{
			ID:       t.ID,
			Node:     t.Node,
			Gateway:  t.Gateway,
			Endpoint: t.Endpoint,
			Inflight: t.Inflight,
		})
	}
	return out
}

// ParsedVersion returns the version of the route as go-version parsed it, nil
// for the zero Route.
func (r Route) ParsedVersion() *version.Version {
	if r.v == nil {
		return nil
	}
	return r.v.ver
}
