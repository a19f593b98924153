package routing

import (
	"strconv"
	"strings"
)

// Candidate is one version of a service weighed against a client: the rule of
// Select, clause by clause, for `coexist route` and for error messages.
type Candidate struct {
	Version string
	Clients string
	State   string

	// AdmitsClient: the client's version is in Clients (clause 1).
	AdmitsClient bool
	// ClientsErr is set when Clients does not parse; it admits no client.
	ClientsErr string
	// MeetsRequirement: the client has no requirement for the service, or
	// this version meets it (clause 2).
	MeetsRequirement bool
	// Running is the number of usable containers (clause 3).
	Running int
	// Candidate: all three clauses hold and the version is active or draining.
	Candidate bool
	// Chosen: this is the version Select picks.
	Chosen bool
	// Reason says why the version is, or is not, chosen.
	Reason string
	// Containers lists every container holding the version, usable or not.
	Containers []ContainerCheck
}

// ContainerCheck is one container holding a version and whether it can serve
// it now.
type ContainerCheck struct {
	ID       string
	Node     string
	Usable   bool
	Inflight int
	// Reason is why it cannot serve ("state starting", "node n2 down",
	// "drained", ...); empty when it can.
	Reason string
}

// Candidates weighs every declared version of service against c, lowest
// version first. It returns nil when the table does not know service. It
// allocates; it is for explaining, not routing.
func Candidates(t *Table, c Client, service string) []Candidate {
	s := t.service(service)
	if s == nil {
		return nil
	}
	return candidates(s, &c)
}

func candidates(s *service, c *Client) []Candidate {
	chosen, w, req := choose(s, c)
	key := c.key()
	out := make([]Candidate, 0, len(s.versions))
	for i := len(s.versions) - 1; i >= 0; i-- {
		v := &s.versions[i]
		cd := Candidate{
			Version:          v.raw,
			Clients:          v.admits.text,
			State:            v.state,
			AdmitsClient:     c.Version != nil && v.admits.check(c.Version, key),
			MeetsRequirement: req == nil || req.check(v.ver, v.key),
			Running:          len(v.targets),
			Chosen:           i == chosen,
		}
		if v.admits.err != nil {
			cd.ClientsErr = v.admits.err.Error()
		}
		usableState := v.kind == stateActive || v.kind == stateDraining
		cd.Candidate = cd.AdmitsClient && cd.MeetsRequirement && cd.Running > 0 && usableState
		for _, tg := range v.targets {
			cd.Containers = append(cd.Containers, ContainerCheck{ID: tg.ID, Node: tg.Node, Usable: true, Inflight: tg.Inflight})
		}
		cd.Containers = append(cd.Containers, v.unusable...)

		var why []string
		switch {
		case cd.Chosen && w&whyDrainingOnly != 0:
			why = append(why, "chosen: highest draining candidate, no active one")
		case cd.Chosen:
			why = append(why, "chosen: highest active candidate")
		case cd.Candidate:
			why = append(why, "candidate, but "+s.versions[chosen].raw+" is preferred")
		default:
			switch {
			case c.Version == nil:
				why = append(why, "client has no version")
			case v.admits.err != nil:
				why = append(why, "invalid clients range "+strconv.Quote(v.admits.text)+": "+cd.ClientsErr)
			case !cd.AdmitsClient:
				why = append(why, "client "+c.label()+" not in clients range "+strconv.Quote(v.admits.text))
			}
			if !cd.MeetsRequirement {
				why = append(why, "requirement "+strconv.Quote(req.text)+" not met")
			}
			if cd.Running == 0 {
				why = append(why, "no running container")
			}
			switch v.kind {
			case stateRetired:
				why = append(why, "retired")
			case stateOther:
				why = append(why, "unknown state "+strconv.Quote(v.state))
			}
		}
		cd.Reason = strings.Join(why, "; ")
		out = append(out, cd)
	}
	return out
}

func noCompatible(s *service, c *Client) *NoCompatibleError {
	e := &NoCompatibleError{
		Service:  s.name,
		Client:   c.Name,
		Versions: candidates(s, c),
	}
	if c.Version != nil {
		e.ClientVersion = c.Version.Original()
	}
	if req, ok := c.requirement(s.name); ok {
		e.Requirement = req.text
	}
	return e
}
