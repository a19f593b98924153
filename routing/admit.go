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
// (DESIGN.md §4), under the gateway's own table.
//
// A call that names no container is routed by Select and forwarded to the
// primary. A call that names one (Coexist-Container, chosen by an SDK whose
// table may be stale) is forwarded to that container when it is usable and
// holds the version Select chooses now, whichever of that version's
// containers it is; the Route then has it as primary and draws nothing from
// rnd. Otherwise the call is refused as safe to retry with an error wrapping
// ErrStaleContainer that says why: the container is unknown, cannot serve,
// holds a draining version while the client has an active candidate, or holds
// another version than the one chosen.
//
// A draining version therefore still serves a client that has nothing else:
// Select chooses it, and a container holding it is accepted.
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
	r.init(s, i, w, &c, req)
	if containerID == "" {
		r.pick(rnd)
		return DecisionForward, r, nil
	}
	if p := r.v.indexOf(containerID); p >= 0 {
		r.primary = int32(p)
		r.why |= whyNamed
		return DecisionForward, r, nil
	}
	return DecisionRefuseRetry, Route{}, stale(t, s, &r, containerID)
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
	return fail("holds %s@%s (%s) but client %s is routed to %s", s.name, held.raw, held.state, client, r.Version)
}
