package routing

import (
	"fmt"
	"maps"
	"slices"

	version "github.com/hashicorp/go-version"
)

// Client is the caller of a service: its name, its version, its own range per
// service it requires ("orders": "~> 1.4"), and the node it runs on, if any,
// for own-node preference.
//
// Build it with ParseClient or NewClient and treat it as immutable: they
// compile the version and requirements so that Select allocates nothing. A
// Client written as a literal, or whose Version or requirements were replaced
// afterwards, is still routed correctly, through go-version, which allocates.
type Client struct {
	Name     string
	Version  *version.Version
	Requires map[string]version.Constraints
	Node     string

	compiled *compiledClient
}

type compiledClient struct {
	version  *version.Version // what key was compiled from
	key      vkey
	requires map[string]*matcher
}

// ParseClient parses a client's version and requirements. Errors name the
// field at fault: "client version" or "requires[orders]".
func ParseClient(name, ver string, requires map[string]string, node string) (Client, error) {
	v, err := version.NewVersion(ver)
	if err != nil {
		return Client{}, fmt.Errorf("client version %q: %w", ver, err)
	}
	var req map[string]version.Constraints
	if len(requires) > 0 {
		req = make(map[string]version.Constraints, len(requires))
		// Sorted, so that of several bad entries the same one is reported.
		for _, svc := range slices.Sorted(maps.Keys(requires)) {
			text := requires[svc]
			m := newMatcher(text)
			if m.err != nil {
				return Client{}, fmt.Errorf("requires[%s] %q: %w", svc, text, m.err)
			}
			req[svc] = m.cs
		}
	}
	return NewClient(name, v, req, node), nil
}

// NewClient returns a Client for an already parsed version and requirements,
// compiled for Select. requires is copied.
func NewClient(name string, v *version.Version, requires map[string]version.Constraints, node string) Client {
	c := Client{Name: name, Version: v, Node: node}
	cc := &compiledClient{version: v}
	if v != nil {
		cc.key = keyOf(v)
	}
	if len(requires) > 0 {
		c.Requires = maps.Clone(requires)
		cc.requires = make(map[string]*matcher, len(requires))
		for svc, cs := range c.Requires {
			cc.requires[svc] = matcherOf(cs.String(), cs)
		}
	}
	c.compiled = cc
	return c
}

// key returns the compiled form of c.Version, or nil when c was not compiled
// or its Version was replaced since.
func (c *Client) key() *vkey {
	if c.compiled == nil || c.compiled.version != c.Version || c.Version == nil {
		return nil
	}
	return &c.compiled.key
}

// requirement returns the client's range for service, if it has one, as a
// matcher; a requirement changed after compiling gets a matcher built now.
func (c *Client) requirement(service string) (*matcher, bool) {
	cs, ok := c.Requires[service]
	if !ok {
		return nil, false
	}
	if c.compiled != nil {
		if m := c.compiled.requires[service]; m != nil && sameConstraints(m.cs, cs) {
			return m, true
		}
	}
	// Not compiled: let go-version decide, without building the fast form.
	return &matcher{text: cs.String(), cs: cs}, true
}

func sameConstraints(a, b version.Constraints) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (c *Client) label() string {
	if c.Version == nil {
		return clientLabel(c.Name, "")
	}
	return clientLabel(c.Name, c.Version.Original())
}
