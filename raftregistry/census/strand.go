package census

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

// Cohort is the live SDK clients of one name, version and requirements.
type Cohort struct {
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Requires map[string]string `json:"requires,omitempty"`
	// Instances is how many processes of the cohort are live.
	Instances int `json:"instances"`
	// Calls are the services any of them has routed to, sorted.
	Calls []string `json:"calls"`
}

// String is "web@1.5.0, 3 instances".
func (c Cohort) String() string {
	s := "s"
	if c.Instances == 1 {
		s = ""
	}
	return fmt.Sprintf("%s@%s, %d instance%s", c.Name, c.Version, c.Instances, s)
}

func (c *Cohort) calls(service string) bool {
	_, ok := slices.BinarySearch(c.Calls, service)
	return ok
}

// Cohorts groups the live SDK clients among ws, sorted by name and version.
func Cohorts(ws []Watcher) []Cohort {
	type ck struct{ name, version, requires string }
	by := map[ck]*Cohort{}
	for _, w := range ws {
		if w.Kind != KindClient {
			continue
		}
		k := ck{w.Name, w.Version, requiresKey(w.Requires)}
		c := by[k]
		if c == nil {
			c = &Cohort{Name: w.Name, Version: w.Version, Requires: w.Requires, Calls: []string{}}
			by[k] = c
		}
		c.Instances++
		for _, s := range w.Calls {
			if !slices.Contains(c.Calls, s) {
				c.Calls = append(c.Calls, s)
			}
		}
	}
	out := make([]Cohort, 0, len(by))
	for _, c := range by {
		slices.Sort(c.Calls)
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b Cohort) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Version, b.Version), cmp.Compare(requiresKey(a.Requires), requiresKey(b.Requires)))
	})
	return out
}

func requiresKey(m map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(k + "=" + m[k] + ";")
	}
	return b.String()
}

// Change is a write that may take a version away from its clients: a
// retire, or a new client range.
type Change struct {
	Service string
	Version string
	// Retire is set for a retire; otherwise Clients is the new range.
	Retire  bool
	Clients string
}

// Served returns the cohorts among cohorts that call service and are routed
// to version by the routing rule (docs/design.md §4) on the given state.
func Served(services []api.Service, containers []api.Container, nodes []api.Node, cohorts []Cohort, service, ver string) []Cohort {
	t := routing.NewTable(services, containers, nodes)
	var out []Cohort
	for _, c := range cohorts {
		if !c.calls(service) {
			continue
		}
		if r, ok := route(t, &c, service); ok && sameVersion(r.Version, ver) {
			out = append(out, c)
		}
	}
	return out
}

// Stranded returns the cohorts that ch would strand (docs/design.md §5): a
// live client that calls the service, is routed to the changed version now,
// and would then have no candidate, or only a draining one where it had an
// active one. Candidates are those of §4, so a version whose containers are
// not running yet does not count. A cohort whose requirements or version do
// not parse is left out: the SDK refuses such a client.
func Stranded(services []api.Service, containers []api.Container, nodes []api.Node, cohorts []Cohort, ch Change) []Cohort {
	before := routing.NewTable(services, containers, nodes)
	after := routing.NewTable(changed(services, ch), containers, nodes)
	var out []Cohort
	for _, c := range cohorts {
		if !c.calls(ch.Service) {
			continue
		}
		r, ok := route(before, &c, ch.Service)
		if !ok || !sameVersion(r.Version, ch.Version) {
			continue
		}
		a, ok := route(after, &c, ch.Service)
		if !ok || (a.State != api.VersionActive && r.State == api.VersionActive) {
			out = append(out, c)
		}
	}
	return out
}

// StrandedError is the refusal of a change that would strand cohorts.
type StrandedError struct {
	Change  Change
	Cohorts []Cohort
}

func (e *StrandedError) Error() string {
	names := make([]string, len(e.Cohorts))
	for i, c := range e.Cohorts {
		names[i] = c.String()
	}
	what := "retiring"
	if !e.Change.Retire {
		what = "narrowing the client range of"
	}
	return fmt.Sprintf("%s version %s of service %q would leave live clients with no version to call: %s (use force=true to do it anyway)",
		what, e.Change.Version, e.Change.Service, strings.Join(names, "; "))
}

func route(t *routing.Table, c *Cohort, service string) (routing.Route, bool) {
	cl, err := routing.ParseClient(c.Name, c.Version, c.Requires, "")
	if err != nil {
		return routing.Route{}, false
	}
	r, err := routing.Select(t, cl, service, nil)
	return r, err == nil
}

// changed is services with ch applied: the version retired, or its range
// replaced.
func changed(services []api.Service, ch Change) []api.Service {
	out := make([]api.Service, len(services))
	for i, s := range services {
		out[i] = s
		if s.Name != ch.Service {
			continue
		}
		vs := make([]api.ServiceVersion, len(s.Versions))
		copy(vs, s.Versions)
		for j := range vs {
			if !sameVersion(vs[j].Version, ch.Version) {
				continue
			}
			if ch.Retire {
				vs[j].State = api.VersionRetired
			} else {
				vs[j].Clients = ch.Clients
			}
		}
		out[i].Versions = vs
	}
	return out
}

func sameVersion(a, b string) bool {
	if a == b {
		return true
	}
	va, err1 := version.NewVersion(a)
	vb, err2 := version.NewVersion(b)
	return err1 == nil && err2 == nil && va.Equal(vb)
}
