package routing

import "fmt"

// Decision is what a gateway does with a call.
type Decision uint8

const (
	// DecisionForward: forward the call to the Route's primary container.
	DecisionForward Decision = iota
	// DecisionRefuseRetry: refuse without reaching any service (503 with
	// Coexist-Retry: safe); the caller retries with a fresh choice.
	DecisionRefuseRetry
	// DecisionNoCompatible: no version serves this client (404).
	DecisionNoCompatible
	// DecisionUnknownService: the service is not declared (404).
	DecisionUnknownService
)

func (d Decision) String() string {
	switch d {
	case DecisionForward:
		return "forward"
	case DecisionRefuseRetry:
		return "refuse-retry"
	case DecisionNoCompatible:
		return "no-compatible"
	case DecisionUnknownService:
		return "unknown-service"
	}
	return fmt.Sprintf("Decision(%d)", uint8(d))
}

// Admit is the gateway's admission of a call for service from client c
// (docs/design.md §4), under the gateway's own table.
//
// A call that names no container is routed by Select and forwarded to the
// primary. A call that names one (Coexist-Container, chosen by an SDK whose
// table may be older or newer than the gateway's) is forwarded to that
// container when, in this table, it is usable for the version of service it
// holds, that version admits c and meets c's requirement, and the version is
// active, or draining while c has no active candidate. The version need not
// be the one Select would choose now: a compatible, active version is never
// refused because a newer one exists. The Route then has the named container
// as primary and draws nothing from rnd. Otherwise the call is refused as
// safe to retry with an error wrapping ErrStaleContainer that says why: the
// container is unknown, cannot serve, holds a version that does not admit c,
// or holds a draining version while c has an active candidate.
//
// The error is nil only for DecisionForward; the Route is set only then.
func Admit(t *Table, c Client, service, containerID string, rnd Rand) (Decision, Route, error) {
	s := t.service(service)
	if s == nil {
		return DecisionUnknownService, Route{}, unknownService(service)
	}
	i, w, req := choose(s, &c)
	if i < 0 {
		return DecisionNoCompatible, Route{}, noCompatible(s, &c)
	}
	var r Route
	if containerID == "" {
		r.init(s, i, w, &c, req)
		r.pick(rnd)
		return DecisionForward, r, nil
	}
	if j, p := s.held(containerID); p >= 0 && admissible(s, j, i, &c, req) {
		hw := why(0)
		if s.versions[j].kind == stateDraining {
			hw = whyDrainingOnly
		}
		r.init(s, j, hw|whyNamed, &c, req)
		r.primary = int32(p)
		return DecisionForward, r, nil
	}
	r.init(s, i, w, &c, req)
	return DecisionRefuseRetry, Route{}, stale(t, s, &r, containerID)
}

// held finds, among the versions of s, the one for which container id is a
// usable target: the index of the version in s.versions and of the container
// in its targets, or -1, -1.
func (s *service) held(id string) (int, int) {
	for j := range s.versions {
		if p := s.versions[j].indexOf(id); p >= 0 {
			return j, p
		}
	}
	return -1, -1
}

// admissible says whether version j of s may serve client c, whose choice
// under the same table is version chosen: j admits c and meets req, and is
// active, or draining while the choice is draining too (c has no active
// candidate).
func admissible(s *service, j, chosen int, c *Client, req *matcher) bool {
	v := &s.versions[j]
	if !v.admits.check(c.Version, c.key()) || (req != nil && !req.check(v.ver, v.key)) {
		return false
	}
	switch v.kind {
	case stateActive:
		return true
	case stateDraining:
		return s.versions[chosen].kind == stateDraining
	}
	return false
}

// stale explains why a named container is not the right choice for route r.
func stale(t *Table, s *service, r *Route, id string) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: container %q %s", ErrStaleContainer, id, fmt.Sprintf(format, args...))
	}
	ci := t.containers[id]
	if ci == nil {
		return fail("is unknown")
	}
	var held *serviceVersion
	for _, ref := range ci.refs {
		if ref.Service != s.name {
			continue
		}
		for j := range s.versions {
			if s.versions[j].raw == ref.Version {
				held = &s.versions[j]
			}
		}
		if held == nil {
			return fail("holds %s, which is not declared", ref)
		}
		break
	}
	if held == nil {
		return fail("does not hold service %q", s.name)
	}
	if held.indexOf(id) < 0 {
		reason := "not usable"
		for _, u := range held.unusable {
			if u.ID == id {
				reason = u.Reason
			}
		}
		return fail("cannot serve %s@%s: %s", s.name, held.raw, reason)
	}
	client := r.clientLabel()
	if held.kind == stateDraining && r.v.kind == stateActive {
		return fail("holds draining %s@%s and client %s has active %s", s.name, held.raw, client, r.Version)
	}
	if held.kind != stateActive && held.kind != stateDraining {
		return fail("holds %s@%s, which is %s", s.name, held.raw, held.state)
	}
	if req := r.requirement; req != nil && !req.check(held.ver, held.key) {
		return fail("holds %s@%s, which does not meet client %s's requirement %q", s.name, held.raw, client, req.text)
	}
	return fail("holds %s@%s, whose clients %q do not admit client %s", s.name, held.raw, held.clients, client)
}
