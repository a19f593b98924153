package client

import (
	"time"

	"github.com/coexist-dev/coexist/routing"
)

// RouteInfo says where a call to a service would go now, and why: for
// debugging and for `coexist route`.
type RouteInfo struct {
	// Service is the service called.
	Service string
	// Client is this client as name@version; Requirement its own
	// constraint on the service, if any.
	Client      string
	Requirement string
	// Version, State and Clients describe the version chosen; empty when
	// there is none.
	Version string
	State   string
	Clients string
	// Container is the container chosen, with the gateway the call is sent
	// to; Containers lists every container of the version in order of
	// preference, the chosen one first (the others are where retries go).
	Container  routing.Target
	Containers []routing.Target
	// Reason explains the choice in words.
	Reason string
	// Candidates weighs every declared version of the service against the
	// client, lowest first, each with why it was or was not chosen.
	Candidates []routing.Candidate
	// TableAge is the route table's Staleness.
	TableAge time.Duration
}

// Route tells which version and container a call to service would go to now,
// and why. With no route, it returns the error a call would (wrapping
// ErrNoCompatibleVersion or ErrUnknownService) and a RouteInfo that still
// lists the candidates weighed. Unlike a call, it allocates.
func (c *Client) Route(service string) (RouteInfo, error) {
	st := c.state.Load()
	info := RouteInfo{
		Service:    service,
		Client:     c.cfg.Name + "@" + c.cfg.Version,
		Candidates: routing.Candidates(st.t, c.ident, service),
		TableAge:   c.Staleness(),
	}
	if c.cfg.Requires != nil {
		info.Requirement = c.cfg.Requires[service]
	}
	r, err := routing.Select(st.t, c.ident, service, c.rnd)
	if err != nil {
		return info, err
	}
	info.Version, info.State, info.Clients = r.Version, r.State, r.Clients
	info.Container = r.Primary()
	info.Containers = r.Containers()
	info.Reason = r.Reason()
	return info, nil
}

// choose is the SDK's choice of a route for one call, the hot path: one
// atomic load and routing.Select, no lock and no allocation. It returns the
// table it chose from, which the rest of the call reads.
func (c *Client) choose(service string) (*tableState, routing.Route, error) {
	c.noteCall(service)
	st := c.state.Load()
	r, err := routing.Select(st.t, c.ident, service, c.rnd)
	return st, r, err
}
