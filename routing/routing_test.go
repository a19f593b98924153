package routing

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
)

// --- fixtures ---------------------------------------------------------------

func sv(ver, clients, state string) api.ServiceVersion {
	return api.ServiceVersion{Version: ver, Clients: clients, State: state}
}

func svc(name string, versions ...api.ServiceVersion) api.Service {
	for i := range versions {
		versions[i].Service = name
	}
	return api.Service{Name: name, Versions: versions}
}

// ctr is a running container on node holding refs ("greeter@1.0.0"), each
// reported serving with no call in flight.
func ctr(id, node string, refs ...string) api.Container {
	c := api.Container{
		ID:      id,
		Node:    node,
		Desired: api.DesiredPresent,
		Status:  &api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:2" + id},
	}
	for _, r := range refs {
		s, v, _ := strings.Cut(r, "@")
		c.Services = append(c.Services, api.ServiceRef{Service: s, Version: v})
		c.Status.Services = append(c.Status.Services, api.ServiceStatus{Service: s, Version: v, State: api.ServiceServing})
	}
	return c
}

// copyStatus keeps fixtures built from one container independent.
func copyStatus(c api.Container) api.Container {
	if c.Status != nil {
		st := *c.Status
		st.Services = append([]api.ServiceStatus(nil), st.Services...)
		c.Status = &st
	}
	return c
}

func inflight(c api.Container, n int) api.Container {
	c = copyStatus(c)
	for i := range c.Status.Services {
		c.Status.Services[i].Inflight = n
	}
	return c
}

func withState(c api.Container, state string) api.Container {
	c = copyStatus(c)
	c.Status.State = state
	return c
}

func nodes(ids ...string) []api.Node {
	var out []api.Node
	for _, id := range ids {
		out = append(out, api.Node{ID: id, Gateway: id + ":7800", Status: api.NodeReady})
	}
	return out
}

var threeNodes = nodes("n1", "n2", "n3")

func client(t *testing.T, ver string, requires map[string]string, node string) Client {
	t.Helper()
	c, err := ParseClient("web", ver, requires, node)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func seeded() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

// greeter: 1.0.0 and 2.0.0, both active, each with one container.
func greeter() ([]api.Service, []api.Container) {
	return []api.Service{svc("greeter",
			sv("1.0.0", ">= 1.0, < 2.0", api.VersionActive),
			sv("2.0.0", ">= 2.0, < 3.0", api.VersionActive),
		)}, []api.Container{
			ctr("g1", "n1", "greeter@1.0.0"),
			ctr("g2", "n2", "greeter@2.0.0"),
		}
}

// --- the rule ---------------------------------------------------------------

func TestSelect(t *testing.T) {
	type want struct {
		version string
		state   string
		primary string
		err     error // errors.Is
	}
	active, draining, retired := api.VersionActive, api.VersionDraining, api.VersionRetired
	two := func(s1, s2 string) []api.Service {
		return []api.Service{svc("greeter",
			sv("1.0.0", ">= 1.0, < 3.0", s1),
			sv("2.0.0", ">= 1.0, < 3.0", s2),
		)}
	}
	both := []api.Container{ctr("g1", "n1", "greeter@1.0.0"), ctr("g2", "n2", "greeter@2.0.0")}
	g1, g2 := both[0], both[1]
	downNode := append(nodes("n1"), api.Node{ID: "n2", Gateway: "n2:7800", Status: api.NodeDown})

	tests := []struct {
		name       string
		services   []api.Service
		containers []api.Container
		nodes      []api.Node
		version    string
		requires   map[string]string
		node       string
		want       want
	}{
		{name: "client range admits the lower version", version: "1.5.0", want: want{version: "1.0.0", primary: "g1"}},
		{name: "client range admits the higher version", version: "2.1.0", want: want{version: "2.0.0", primary: "g2"}},
		{name: "client below every range", version: "0.9.0", want: want{err: ErrNoCompatibleVersion}},
		{name: "client above every range", version: "3.0.0", want: want{err: ErrNoCompatibleVersion}},
		{name: "upper bound is exclusive", version: "2.0.0", want: want{version: "2.0.0"}},
		{
			name:     "highest of several admitting versions",
			services: two(active, active), containers: both,
			version: "1.5.0", want: want{version: "2.0.0", state: active, primary: "g2"},
		},
		{
			name:     "requirement excludes the newest version",
			services: two(active, active), containers: both,
			version: "1.5.0", requires: map[string]string{"greeter": "~> 1.0"},
			want: want{version: "1.0.0", primary: "g1"},
		},
		{
			name:     "requirement for another service is ignored",
			services: two(active, active), containers: both,
			version: "1.5.0", requires: map[string]string{"orders": "~> 1.0"},
			want: want{version: "2.0.0"},
		},
		{
			name:     "requirement nothing meets",
			services: two(active, active), containers: both,
			version: "1.5.0", requires: map[string]string{"greeter": ">= 5"},
			want: want{err: ErrNoCompatibleVersion},
		},
		{
			name:     "active before a higher draining",
			services: two(active, draining), containers: both,
			version: "1.5.0", want: want{version: "1.0.0", state: active},
		},
		{
			name:     "draining only candidate is chosen",
			services: two(retired, draining), containers: both,
			version: "1.5.0", want: want{version: "2.0.0", state: draining},
		},
		{
			name:     "highest of two draining",
			services: two(draining, draining), containers: both,
			version: "1.5.0", want: want{version: "2.0.0", state: draining},
		},
		{
			name:     "retired never, even when running",
			services: two(retired, retired), containers: both,
			version: "1.5.0", want: want{err: ErrNoCompatibleVersion},
		},
		{
			name:     "unknown state never",
			services: two("paused", active), containers: both,
			version: "1.5.0", want: want{version: "2.0.0"},
		},
		{
			name:     "version without containers is skipped",
			services: two(active, active), containers: []api.Container{g1},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "starting container ignored",
			services: two(active, active), containers: []api.Container{g1, withState(ctr("g2", "n2", "greeter@2.0.0"), api.ContainerStarting)},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "failed container ignored",
			services: two(active, active), containers: []api.Container{g1, withState(ctr("g2", "n2", "greeter@2.0.0"), api.ContainerFailed)},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "stopped container ignored",
			services: two(active, active), containers: []api.Container{g1, withState(ctr("g2", "n2", "greeter@2.0.0"), api.ContainerStopped)},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "draining container ignored",
			services: two(active, active), containers: []api.Container{g1, withState(ctr("g2", "n2", "greeter@2.0.0"), api.ContainerDraining)},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "container without status ignored",
			services: two(active, active), containers: []api.Container{g1, func() api.Container { c := ctr("g2", "n2", "greeter@2.0.0"); c.Status = nil; return c }()},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "container being deleted ignored",
			services: two(active, active), containers: []api.Container{g1, func() api.Container { c := ctr("g2", "n2", "greeter@2.0.0"); c.Desired = api.DesiredDeleted; return c }()},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "node down ignored",
			services: two(active, active), containers: both, nodes: downNode,
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "unknown node ignored",
			services: two(active, active), containers: both, nodes: nodes("n1"),
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "drained version of a container ignored",
			services: two(active, active),
			containers: []api.Container{g1, func() api.Container {
				c := ctr("g2", "n2", "greeter@2.0.0")
				c.Status.Services[0].State = api.ServiceDrained
				return c
			}()},
			version: "1.5.0", want: want{version: "1.0.0"},
		},
		{
			name:     "draining version of a container still serves",
			services: two(active, active),
			containers: []api.Container{g1, func() api.Container {
				c := ctr("g2", "n2", "greeter@2.0.0")
				c.Status.Services[0].State = api.ServiceDraining
				return c
			}()},
			version: "1.5.0", want: want{version: "2.0.0"},
		},
		{
			name:     "no per-service status counts as serving",
			services: two(active, active),
			containers: []api.Container{g1, func() api.Container {
				c := ctr("g2", "n2", "greeter@2.0.0")
				c.Status.Services = nil
				return c
			}()},
			version: "1.5.0", want: want{version: "2.0.0"},
		},
		{
			name:     "every container unusable",
			services: two(active, active), containers: []api.Container{withState(g1, api.ContainerFailed), withState(g2, api.ContainerStarting)},
			version: "1.5.0", want: want{err: ErrNoCompatibleVersion},
		},
		{
			name:     "own node preferred over less loaded",
			services: two(active, retired),
			containers: []api.Container{
				inflight(ctr("a", "n1", "greeter@1.0.0"), 0),
				inflight(ctr("b", "n2", "greeter@1.0.0"), 9),
			},
			version: "1.5.0", node: "n2", want: want{version: "1.0.0", primary: "b"},
		},
		{
			name:     "client on a node without containers",
			services: two(active, retired),
			containers: []api.Container{
				inflight(ctr("a", "n1", "greeter@1.0.0"), 0),
				inflight(ctr("b", "n2", "greeter@1.0.0"), 9),
			},
			version: "1.5.0", node: "n3", want: want{version: "1.0.0", primary: "a"},
		},
		{
			name:     "two choices between two: the less loaded",
			services: two(active, retired),
			containers: []api.Container{
				inflight(ctr("a", "n1", "greeter@1.0.0"), 7),
				inflight(ctr("b", "n2", "greeter@1.0.0"), 3),
			},
			version: "1.5.0", want: want{version: "1.0.0", primary: "b"},
		},
		{
			name:     "two choices on own node: the less loaded there",
			services: two(active, retired),
			containers: []api.Container{
				inflight(ctr("a", "n1", "greeter@1.0.0"), 0),
				inflight(ctr("b", "n2", "greeter@1.0.0"), 7),
				inflight(ctr("c", "n2", "greeter@1.0.0"), 3),
			},
			version: "1.5.0", node: "n2", want: want{version: "1.0.0", primary: "c"},
		},
		{
			name:     "equal in-flight: lower id",
			services: two(active, retired),
			containers: []api.Container{
				inflight(ctr("b", "n2", "greeter@1.0.0"), 4),
				inflight(ctr("a", "n1", "greeter@1.0.0"), 4),
			},
			version: "1.5.0", want: want{version: "1.0.0", primary: "a"},
		},
		{
			name: "container holding two services serves both",
			services: []api.Service{
				svc("greeter", sv("1.0.0", ">= 1.0", active)),
				svc("orders", sv("1.4.2", ">= 1.0", active)),
			},
			containers: []api.Container{ctr("multi", "n1", "orders@1.4.2", "greeter@1.0.0")},
			version:    "1.5.0", want: want{version: "1.0.0", primary: "multi"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			services, containers := tt.services, tt.containers
			if services == nil {
				services, containers = greeter()
			}
			ns := tt.nodes
			if ns == nil {
				ns = threeNodes
			}
			tab := NewTable(services, containers, ns)
			r, err := Select(tab, client(t, tt.version, tt.requires, tt.node), "greeter", seeded())
			if tt.want.err != nil {
				if !errors.Is(err, tt.want.err) {
					t.Fatalf("Select = %s, %v; want error %v", r.Version, err, tt.want.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Select: %v", err)
			}
			if r.Version != tt.want.version {
				t.Errorf("version = %s, want %s (%s)", r.Version, tt.want.version, r.Reason())
			}
			if tt.want.state != "" && r.State != tt.want.state {
				t.Errorf("state = %s, want %s", r.State, tt.want.state)
			}
			if tt.want.primary != "" && r.Primary().ID != tt.want.primary {
				t.Errorf("primary = %s, want %s (%s)", r.Primary().ID, tt.want.primary, r.Reason())
			}
			if r.Service != "greeter" || r.Len() == 0 {
				t.Errorf("route = %+v", r.API())
			}
		})
	}
}

// The version tie of equal precedence is decided by the version string, not
// by the order the registry listed them in.
func TestSelectVersionTie(t *testing.T) {
	a := sv("1.2.0", ">= 1.0", api.VersionActive)
	b := sv("1.2.0+build.7", ">= 1.0", api.VersionActive)
	cs := []api.Container{ctr("x", "n1", "greeter@1.2.0"), ctr("y", "n1", "greeter@1.2.0+build.7")}
	c := client(t, "1.0.0", nil, "")
	var got []string
	for _, order := range [][]api.ServiceVersion{{a, b}, {b, a}} {
		tab := NewTable([]api.Service{svc("greeter", order...)}, cs, threeNodes)
		r, err := Select(tab, c, "greeter", seeded())
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Version+" "+r.Primary().ID)
	}
	if got[0] != got[1] || got[0] != "1.2.0+build.7 y" {
		t.Errorf("tie resolved as %q by input order; want 1.2.0+build.7 y both times", got)
	}
}

// Power of two choices: with three containers the most loaded is never the
// primary, and the least loaded is it two times in three.
func TestSelectTwoChoices(t *testing.T) {
	services := []api.Service{svc("greeter", sv("1.0.0", ">= 1.0", api.VersionActive))}
	containers := []api.Container{
		inflight(ctr("light", "n1", "greeter@1.0.0"), 0),
		inflight(ctr("mid", "n2", "greeter@1.0.0"), 5),
		inflight(ctr("heavy", "n3", "greeter@1.0.0"), 9),
	}
	tab := NewTable(services, containers, threeNodes)
	c := client(t, "1.0.0", nil, "")
	rnd := seeded()
	count := map[string]int{}
	const n = 3000
	for range n {
		r, err := Select(tab, c, "greeter", rnd)
		if err != nil {
			t.Fatal(err)
		}
		count[r.Primary().ID]++
	}
	if count["heavy"] != 0 {
		t.Errorf("the most loaded container was chosen %d times", count["heavy"])
	}
	if l := count["light"]; l < n*6/10 || l > n*73/100 {
		t.Errorf("the least loaded was chosen %d of %d times; want about two thirds", l, n)
	}
	// A nil Rand takes the least loaded.
	r, err := Select(tab, c, "greeter", nil)
	if err != nil || r.Primary().ID != "light" {
		t.Errorf("Select(nil rand) = %v, %v; want light", r.Primary().ID, err)
	}
}

func TestSelectDeterministic(t *testing.T) {
	var containers []api.Container
	for i := range 12 {
		containers = append(containers, inflight(ctr(fmt.Sprintf("c%02d", i), fmt.Sprintf("n%d", i%3+1), "greeter@1.0.0"), i%4))
	}
	tab := NewTable([]api.Service{svc("greeter", sv("1.0.0", ">= 1.0", api.VersionActive))}, containers, threeNodes)
	run := func(node string) []string {
		rnd := rand.New(rand.NewPCG(42, 7))
		c := client(t, "1.0.0", nil, node)
		var out []string
		for range 200 {
			r, err := Select(tab, c, "greeter", rnd)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r.Primary().ID)
		}
		return out
	}
	for _, node := range []string{"", "n2"} {
		a, b := run(node), run(node)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("node %q: two runs with one seed differ", node)
		}
		seen := map[string]bool{}
		for _, id := range a {
			seen[id] = true
		}
		if len(seen) < 2 {
			t.Errorf("node %q: 200 draws chose only %v", node, seen)
		}
	}
}

func TestRouteOrder(t *testing.T) {
	containers := []api.Container{
		inflight(ctr("a", "n1", "greeter@1.0.0"), 1),
		inflight(ctr("b", "n2", "greeter@1.0.0"), 5),
		inflight(ctr("c", "n2", "greeter@1.0.0"), 2),
		inflight(ctr("d", "n3", "greeter@1.0.0"), 0),
		inflight(ctr("e", "n2", "greeter@1.0.0"), 2),
		inflight(ctr("f", "n1", "greeter@1.0.0"), 1),
	}
	tab := NewTable([]api.Service{svc("greeter", sv("1.0.0", ">= 1.0", api.VersionActive))}, containers, threeNodes)
	for seed := range uint64(20) {
		r, err := Select(tab, client(t, "1.0.0", nil, "n2"), "greeter", rand.New(rand.NewPCG(seed, 1)))
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, tg := range r.Containers() {
			ids = append(ids, tg.ID)
		}
		// Own node n2 first (c, e, b by load), primary first of all; then the
		// rest by load: d (0), a (1), f (1).
		rest := []string{"d", "a", "f"}
		var local []string
		for _, id := range []string{"c", "e", "b"} {
			if id != ids[0] {
				local = append(local, id)
			}
		}
		want := append(append([]string{ids[0]}, local...), rest...)
		if ids[0] == "b" || !strings.Contains("ce", ids[0]) {
			t.Errorf("seed %d: primary %s; want c or e, the less loaded on n2", seed, ids[0])
		}
		if !reflect.DeepEqual(ids, want) {
			t.Errorf("seed %d: order %v, want %v", seed, ids, want)
		}
		wire := r.API()
		if len(wire.Containers) != 6 || wire.Containers[0].ID != ids[0] || wire.Containers[0].Gateway != "n2:7800" {
			t.Errorf("API containers = %+v", wire.Containers)
		}
	}

	// No own node: primary, then all others by load then id.
	r, err := Select(tab, client(t, "1.0.0", nil, ""), "greeter", seeded())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range r.Len() {
		ids = append(ids, r.At(i).ID)
	}
	var want []string
	for _, id := range []string{"d", "a", "f", "c", "e", "b"} {
		if id != ids[0] {
			want = append(want, id)
		}
	}
	if !reflect.DeepEqual(ids[1:], want) {
		t.Errorf("order %v, want %s then %v", ids, ids[0], want)
	}
}

func TestRouteAPI(t *testing.T) {
	services, containers := greeter()
	containers = append(containers, inflight(ctr("g3", "n3", "greeter@2.0.0"), 4))
	tab := NewTable(services, containers, threeNodes)
	r, err := Select(tab, client(t, "2.1.0", nil, "n3"), "greeter", seeded())
	if err != nil {
		t.Fatal(err)
	}
	got := r.API()
	want := api.Route{
		Service: "greeter", Version: "2.0.0", State: "active", Clients: ">= 2.0, < 3.0",
		Containers: []api.RouteContainer{
			{ID: "g3", Node: "n3", Gateway: "n3:7800", Endpoint: "127.0.0.1:2g3", Inflight: 4},
			{ID: "g2", Node: "n2", Gateway: "n2:7800", Endpoint: "127.0.0.1:2g2"},
		},
		Reason: "highest active version admitting client web@2.1.0; container g3 on own node n3, the only one there",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("API() =\n%+v\nwant\n%+v", got, want)
	}
}

func TestRouteReason(t *testing.T) {
	services := []api.Service{svc("greeter",
		sv("1.0.0", ">= 1.0", api.VersionDraining),
		sv("1.1.0", ">= 1.0", api.VersionActive),
	)}
	tests := []struct {
		name       string
		containers []api.Container
		requires   map[string]string
		node       string
		want       string
	}{
		{
			name:       "single",
			containers: []api.Container{ctr("a", "n1", "greeter@1.1.0")},
			want:       "highest active version admitting client web@1.3.0; container a, the only one running",
		},
		{
			name:       "two choices",
			containers: []api.Container{ctr("a", "n1", "greeter@1.1.0"), ctr("b", "n2", "greeter@1.1.0")},
			want:       "highest active version admitting client web@1.3.0; container a, less loaded of two random choices",
		},
		{
			name:       "own node, two choices",
			containers: []api.Container{ctr("a", "n1", "greeter@1.1.0"), ctr("b", "n1", "greeter@1.1.0")},
			node:       "n1",
			want:       "highest active version admitting client web@1.3.0; container a on own node n1, less loaded of two random choices",
		},
		{
			name:       "only draining, with requirement",
			containers: []api.Container{ctr("a", "n1", "greeter@1.0.0"), ctr("b", "n1", "greeter@1.1.0")},
			requires:   map[string]string{"greeter": "< 1.1"},
			want:       `only draining candidates: highest draining version admitting client web@1.3.0 and meeting its requirement "< 1.1"; container a, the only one running`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(services, tt.containers, threeNodes)
			r, err := Select(tab, client(t, "1.3.0", tt.requires, tt.node), "greeter", seeded())
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Reason(); got != tt.want {
				t.Errorf("Reason() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// --- errors -----------------------------------------------------------------

func TestSelectErrors(t *testing.T) {
	services, containers := greeter()
	services[0].Versions = append(services[0].Versions, sv("0.9.0", ">= 0.1, < 1.0", api.VersionRetired))
	tab := NewTable(services, containers, threeNodes)

	tests := []struct {
		name     string
		table    *Table
		service  string
		version  string
		requires map[string]string
		is       error
		text     string
	}{
		{
			name: "no compatible", table: tab, service: "greeter", version: "3.0.0",
			is:   ErrNoCompatibleVersion,
			text: `no compatible version of service "greeter" for client web@3.0.0: 1.0.0 (active, clients ">= 1.0, < 2.0"), 2.0.0 (active, clients ">= 2.0, < 3.0") (+1 retired)`,
		},
		{
			name: "requirement", table: tab, service: "greeter", version: "1.5.0", requires: map[string]string{"greeter": "~> 2.0"},
			is:   ErrNoCompatibleVersion,
			text: `no compatible version of service "greeter" for client web@1.5.0 requiring "~> 2.0": 1.0.0 (active, clients ">= 1.0, < 2.0", excluded by requirement), 2.0.0 (active, clients ">= 2.0, < 3.0") (+1 retired)`,
		},
		{
			name: "nothing running", table: NewTable(services, nil, threeNodes), service: "greeter", version: "1.5.0",
			is:   ErrNoCompatibleVersion,
			text: `no compatible version of service "greeter" for client web@1.5.0: 1.0.0 (active, clients ">= 1.0, < 2.0", no running container), 2.0.0 (active, clients ">= 2.0, < 3.0") (+1 retired)`,
		},
		{
			name: "every version retired", service: "greeter", version: "1.0.0",
			table: NewTable([]api.Service{{Name: "greeter", Versions: []api.ServiceVersion{
				sv("0.9.0", ">= 0.1", api.VersionRetired), sv("1.0.0", ">= 1.0", api.VersionRetired)}}}, nil, nil),
			is:   ErrNoCompatibleVersion,
			text: `no compatible version of service "greeter" for client web@1.0.0: no active or draining version (+2 retired)`,
		},
		{
			name: "long history", service: "greeter", version: "9.0.0",
			table: NewTable([]api.Service{{Name: "greeter", Versions: []api.ServiceVersion{
				sv("1.0.0", ">= 1.0, < 2.0", api.VersionRetired), sv("1.1.0", ">= 1.0, < 2.0", api.VersionRetired),
				sv("1.2.0", ">= 1.0, < 2.0", api.VersionRetired), sv("1.3.0", ">= 1.0, < 2.0", api.VersionRetired),
				sv("1.4.0", ">= 1.0, < 2.0", api.VersionRetired), sv("1.5.0", ">= 1.0, < 2.0", api.VersionRetired),
				sv("1.6.0", ">= 1.0, < 2.0", api.VersionDraining), sv("2.0.0", ">= 2.0, < 3.0", api.VersionActive)}}}, nil, nil),
			is: ErrNoCompatibleVersion,
			text: `no compatible version of service "greeter" for client web@9.0.0: 1.6.0 (draining, clients ">= 1.0, < 2.0"), ` +
				`2.0.0 (active, clients ">= 2.0, < 3.0") (+6 retired)`,
		},
		{
			name: "no versions", table: NewTable([]api.Service{{Name: "greeter"}}, nil, nil), service: "greeter", version: "1.0.0",
			is:   ErrNoCompatibleVersion,
			text: `no compatible version of service "greeter" for client web@1.0.0: no versions declared`,
		},
		{
			name: "unknown service", table: tab, service: "orders", version: "1.0.0",
			is:   ErrUnknownService,
			text: `unknown service "orders"`,
		},
		{
			name: "nil table", table: nil, service: "orders", version: "1.0.0",
			is:   ErrUnknownService,
			text: `unknown service "orders"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Select(tt.table, client(t, tt.version, tt.requires, ""), tt.service, seeded())
			if !errors.Is(err, tt.is) {
				t.Fatalf("err = %v, want errors.Is %v", err, tt.is)
			}
			if err.Error() != tt.text {
				t.Errorf("err =\n%s\nwant\n%s", err, tt.text)
			}
		})
	}

	t.Run("typed", func(t *testing.T) {
		_, err := Select(tab, client(t, "3.0.0", nil, ""), "greeter", seeded())
		var nc *NoCompatibleError
		if !errors.As(err, &nc) {
			t.Fatalf("err %T is not a *NoCompatibleError", err)
		}
		if nc.Service != "greeter" || nc.Client != "web" || nc.ClientVersion != "3.0.0" || len(nc.Versions) != 3 {
			t.Errorf("NoCompatibleError = %+v", nc)
		}
	})

	t.Run("client without version", func(t *testing.T) {
		_, err := Select(tab, Client{Name: "web"}, "greeter", seeded())
		if !errors.Is(err, ErrNoCompatibleVersion) || !strings.Contains(err.Error(), "client web (no version)") {
			t.Errorf("err = %v", err)
		}
	})
}

// --- candidates -------------------------------------------------------------

func TestCandidates(t *testing.T) {
	services := []api.Service{svc("greeter",
		sv("1.0.0", ">= 1.0, < 2.0", api.VersionActive),
		sv("1.1.0", ">= 1.0, < 2.0", api.VersionActive),
		sv("1.2.0", ">= 1.0, < 2.0", api.VersionActive),
		sv("1.3.0", ">= 1.0, < 2.0", api.VersionRetired),
		sv("1.4.0", "not a range", api.VersionActive),
		sv("2.0.0", ">= 2.0", api.VersionActive),
		sv("bogus", ">= 1.0", api.VersionActive),
	)}
	containers := []api.Container{
		ctr("a", "n1", "greeter@1.0.0"),
		ctr("b", "n1", "greeter@1.1.0"),
		withState(ctr("c", "n1", "greeter@1.2.0"), api.ContainerStarting),
		ctr("d", "n1", "greeter@1.3.0"),
		ctr("e", "n1", "greeter@1.4.0"),
		ctr("f", "n1", "greeter@2.0.0"),
	}
	tab := NewTable(services, containers, threeNodes)
	got := Candidates(tab, client(t, "1.5.0", map[string]string{"greeter": "< 1.1"}, ""), "greeter")
	type row struct {
		Version   string
		Candidate bool
		Chosen    bool
		Reason    string
	}
	var rows []row
	for _, c := range got {
		rows = append(rows, row{c.Version, c.Candidate, c.Chosen, c.Reason})
	}
	want := []row{
		{"1.0.0", true, true, "chosen: highest active candidate"},
		{"1.1.0", false, false, `requirement "< 1.1" not met`},
		{"1.2.0", false, false, `requirement "< 1.1" not met; no running container`},
		{"1.3.0", false, false, `requirement "< 1.1" not met; retired`},
		{"1.4.0", false, false, `invalid clients range "not a range": malformed constraint: not a range; requirement "< 1.1" not met`},
		{"2.0.0", false, false, `client web@1.5.0 not in clients range ">= 2.0"; requirement "< 1.1" not met`},
	}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("Candidates =\n%+v\nwant\n%+v", rows, want)
	}
	if cs := got[2].Containers; len(cs) != 1 || cs[0].Usable || cs[0].Reason != "state starting" {
		t.Errorf("1.2.0 containers = %+v", cs)
	}
	if Candidates(tab, client(t, "1.5.0", nil, ""), "orders") != nil {
		t.Error("Candidates of an unknown service is not nil")
	}
	// Without the requirement 1.1.0 is chosen and 1.0.0 is passed over.
	got = Candidates(tab, client(t, "1.5.0", nil, ""), "greeter")
	if !got[1].Chosen || got[0].Reason != "candidate, but 1.1.0 is preferred" {
		t.Errorf("Candidates = %+v", got[:2])
	}
}

// --- the gateway ------------------------------------------------------------

func TestAdmit(t *testing.T) {
	services := []api.Service{
		svc("greeter",
			sv("1.0.0", ">= 1.0, < 2.0", api.VersionDraining),
			sv("1.1.0", ">= 1.5, < 2.0", api.VersionActive),
			sv("0.9.0", ">= 1.6, < 2.0", api.VersionActive),
		),
		svc("orders", sv("1.0.0", ">= 1.0", api.VersionActive)),
	}
	containers := []api.Container{
		ctr("old", "n1", "greeter@1.0.0"),
		inflight(ctr("new-a", "n1", "greeter@1.1.0"), 3),
		ctr("new-b", "n2", "greeter@1.1.0"),
		withState(ctr("new-starting", "n2", "greeter@1.1.0"), api.ContainerStarting),
		ctr("older", "n3", "greeter@0.9.0"),
		ctr("ord", "n3", "orders@1.0.0"),
	}
	tab := NewTable(services, containers, threeNodes)
	tests := []struct {
		name      string
		version   string // of the client
		service   string
		container string
		want      Decision
		primary   string
		errText   string
	}{
		{name: "no container named: forward to the choice", version: "1.6.0", service: "greeter", want: DecisionForward, primary: "new-b"},
		{name: "named container of the chosen version", version: "1.6.0", service: "greeter", container: "new-a", want: DecisionForward, primary: "new-a"},
		{name: "any usable container of the chosen version", version: "1.6.0", service: "greeter", container: "new-b", want: DecisionForward, primary: "new-b"},
		{
			name: "draining version, client has an active candidate", version: "1.6.0", service: "greeter", container: "old", want: DecisionRefuseRetry,
			errText: `container is not the right choice: container "old" holds draining greeter@1.0.0 and client web@1.6.0 has active 1.1.0`,
		},
		{name: "draining version, client has nothing else", version: "1.2.0", service: "greeter", container: "old", want: DecisionForward, primary: "old"},
		// The gateway's table may already prefer a newer version than the
		// caller's: a compatible, active version is still served (§4).
		{name: "older active version than the choice", version: "1.6.0", service: "greeter", container: "older", want: DecisionForward, primary: "older"},
		{
			name: "active version whose range does not admit the client", version: "1.5.0", service: "greeter", container: "older", want: DecisionRefuseRetry,
			errText: `container is not the right choice: container "older" holds greeter@0.9.0, whose clients ">= 1.6, < 2.0" do not admit client web@1.5.0`,
		},
		{
			name: "not usable", version: "1.6.0", service: "greeter", container: "new-starting", want: DecisionRefuseRetry,
			errText: `container is not the right choice: container "new-starting" cannot serve greeter@1.1.0: state starting`,
		},
		{
			name: "unknown container", version: "1.6.0", service: "greeter", container: "gone", want: DecisionRefuseRetry,
			errText: `container is not the right choice: container "gone" is unknown`,
		},
		{
			name: "container of another service", version: "1.6.0", service: "greeter", container: "ord", want: DecisionRefuseRetry,
			errText: `container is not the right choice: container "ord" does not hold service "greeter"`,
		},
		{name: "no compatible version", version: "3.0.0", service: "greeter", container: "old", want: DecisionNoCompatible},
		{name: "unknown service", version: "1.6.0", service: "payments", want: DecisionUnknownService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r, err := Admit(tab, client(t, tt.version, nil, ""), tt.service, tt.container, seeded())
			if d != tt.want {
				t.Fatalf("decision = %v (%v), want %v", d, err, tt.want)
			}
			switch d {
			case DecisionForward:
				if err != nil {
					t.Fatalf("forward with error %v", err)
				}
				if tt.primary != "" && r.Primary().ID != tt.primary {
					t.Errorf("primary = %s, want %s", r.Primary().ID, tt.primary)
				}
				if tt.container != "" && !strings.Contains(r.Reason(), "named by the call") {
					t.Errorf("reason = %q", r.Reason())
				}
			case DecisionRefuseRetry:
				if !errors.Is(err, ErrStaleContainer) {
					t.Errorf("err = %v, want ErrStaleContainer", err)
				}
				if tt.errText != "" && err.Error() != tt.errText {
					t.Errorf("err =\n%s\nwant\n%s", err, tt.errText)
				}
			case DecisionNoCompatible:
				if !errors.Is(err, ErrNoCompatibleVersion) {
					t.Errorf("err = %v", err)
				}
			case DecisionUnknownService:
				if !errors.Is(err, ErrUnknownService) {
					t.Errorf("err = %v", err)
				}
			}
		})
	}
}

func TestAdmitNamedDrawsNothing(t *testing.T) {
	services, containers := greeter()
	tab := NewTable(services, containers, threeNodes)
	d, _, err := Admit(tab, client(t, "1.0.0", nil, ""), "greeter", "g1", panicRand{})
	if d != DecisionForward || err != nil {
		t.Fatalf("Admit = %v, %v", d, err)
	}
}

type panicRand struct{}

func (panicRand) IntN(int) int { panic("drew from rand") }

func TestDecisionString(t *testing.T) {
	for d, want := range map[Decision]string{
		DecisionForward: "forward", DecisionRefuseRetry: "refuse-retry",
		DecisionNoCompatible: "no-compatible", DecisionUnknownService: "unknown-service", 9: "Decision(9)",
	} {
		if d.String() != want {
			t.Errorf("%d.String() = %q, want %q", d, d.String(), want)
		}
	}
}

// --- clients ----------------------------------------------------------------

func TestParseClient(t *testing.T) {
	tests := []struct {
		name     string
		version  string
		requires map[string]string
		err      string
	}{
		{name: "plain", version: "1.2.3"},
		{name: "requirements", version: "1.2.3", requires: map[string]string{"orders": "~> 1.4", "greeter": ">= 1.0, < 2.0"}},
		{name: "bad version", version: "one", err: `client version "one": malformed version: one`},
		{name: "empty version", version: "", err: `client version "": malformed version: `},
		{name: "bad requirement", version: "1.0.0", requires: map[string]string{"orders": "~> x", "greeter": ">= 1"}, err: `requires[orders] "~> x": malformed constraint: ~> x`},
		{name: "empty requirement", version: "1.0.0", requires: map[string]string{"orders": " "}, err: `requires[orders] " ": empty range`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseClient("web", tt.version, tt.requires, "n1")
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Name != "web" || c.Node != "n1" || c.Version.Original() != tt.version || len(c.Requires) != len(tt.requires) {
				t.Errorf("client = %+v", c)
			}
		})
	}
}

// A Client written as a literal, or changed after ParseClient, is routed as
// a compiled one is.
func TestClientNotCompiled(t *testing.T) {
	services := []api.Service{svc("greeter",
		sv("1.0.0", ">= 1.0, < 3.0", api.VersionActive),
		sv("2.0.0", ">= 1.0, < 3.0", api.VersionActive),
	)}
	containers := []api.Container{ctr("a", "n1", "greeter@1.0.0"), ctr("b", "n1", "greeter@2.0.0")}
	tab := NewTable(services, containers, threeNodes)
	v := version.Must(version.NewVersion("1.5.0"))
	req := map[string]version.Constraints{"greeter": version.MustConstraints(version.NewConstraint("< 2.0"))}

	changed := client(t, "0.5.0", map[string]string{"greeter": ">= 9"}, "")
	changed.Version = v
	changed.Requires = req

	for name, c := range map[string]Client{
		"literal":   {Name: "web", Version: v, Requires: req},
		"changed":   changed,
		"NewClient": NewClient("web", v, req, ""),
	} {
		r, err := Select(tab, c, "greeter", seeded())
		if err != nil || r.Version != "1.0.0" {
			t.Errorf("%s: Select = %s, %v; want 1.0.0", name, r.Version, err)
		}
	}
}

// --- robustness -------------------------------------------------------------

func TestNewTableBadInput(t *testing.T) {
	services := []api.Service{
		svc("greeter",
			sv("not-a-version", ">= 1.0", api.VersionActive),
			sv("1.0.0", "", api.VersionActive),
			sv("1.1.0", ">= 1.0", api.VersionActive),
			sv("1.1.0", ">= 9.0", api.VersionActive), // duplicate: the first wins
		),
		svc("greeter", sv("1.2.0", ">= 9.0", api.VersionActive)), // merged
	}
	containers := []api.Container{
		ctr("a", "n1", "greeter@1.0.0"),
		ctr("b", "n1", "greeter@1.1.0", "greeter@1.1.0"),
		ctr("b", "n2", "greeter@1.2.0"), // duplicate id: the first wins
		ctr("c", "n1", "greeter@9.9.9", "nosuch@1.0.0"),
		ctr("d", "", "greeter@not-a-version"),
		{ID: "e", Services: []api.ServiceRef{{Service: "greeter", Version: "1.1.0"}}},
	}
	tab := NewTable(services, containers, append(threeNodes, threeNodes[0]))
	r, err := Select(tab, client(t, "1.5.0", nil, ""), "greeter", seeded())
	if err != nil || r.Version != "1.1.0" || r.Len() != 1 || r.Primary().ID != "b" {
		t.Fatalf("Select = %+v, %v", r.API(), err)
	}
	cs := Candidates(tab, client(t, "1.5.0", nil, ""), "greeter")
	if len(cs) != 3 || cs[0].Version != "1.0.0" || cs[0].ClientsErr != "empty range" {
		t.Errorf("Candidates = %+v", cs)
	}
	if got := tab.Services(); !reflect.DeepEqual(got, []string{"greeter"}) {
		t.Errorf("Services() = %v", got)
	}

	// Nothing at all.
	empty := NewTable(nil, nil, nil)
	if _, err := Select(empty, client(t, "1.0.0", nil, ""), "greeter", nil); !errors.Is(err, ErrUnknownService) {
		t.Errorf("empty table: %v", err)
	}
	var zero Route
	if zero.Len() != 0 || zero.Reason() != "" || len(zero.Containers()) != 0 || zero.ParsedVersion() != nil {
		t.Error("zero Route is not empty")
	}
}

// The table is shared by every caller of an SDK: Select from many goroutines
// at once, each with its own Rand (run with -race).
func TestSelectConcurrent(t *testing.T) {
	services, containers := greeter()
	tab := NewTable(services, containers, threeNodes)
	c := client(t, "1.5.0", map[string]string{"greeter": "~> 1.0"}, "n1")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(g), 0))
			for range 500 {
				r, err := Select(tab, c, "greeter", rnd)
				if err != nil || r.Version != "1.0.0" {
					t.Errorf("Select = %s, %v", r.Version, err)
					return
				}
				_ = r.API()
			}
		})
	}
	wg.Wait()
}

func TestSelectAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation")
	}
	var containers []api.Container
	for i := range 6 {
		for _, v := range []string{"1.0.0", "2.0.0", "1.4.0"} {
			containers = append(containers, inflight(ctr(fmt.Sprintf("c%d-%s", i, v), fmt.Sprintf("n%d", i%3+1), "greeter@"+v), i))
		}
	}
	services := []api.Service{svc("greeter",
		sv("1.0.0", ">= 1.0, < 2.0", api.VersionActive),
		sv("2.0.0", ">= 2.0, < 3.0", api.VersionDraining),
		sv("1.5.0-beta.1", "~> 1.2", api.VersionActive),
		sv("1.4.0", ">= 1.3.0-rc.0", api.VersionActive),
	)}
	tab := NewTable(services, containers, threeNodes)
	rnd := seeded()
	for _, c := range []Client{
		client(t, "1.5.0", nil, ""),
		client(t, "1.5.0", nil, "n2"),
		client(t, "2.5.0", map[string]string{"greeter": "~> 2.0"}, "n2"),
		client(t, "1.3.0-rc.1", map[string]string{"greeter": "> 0.1"}, "n2"),
	} {
		var err error
		allocs := testing.AllocsPerRun(200, func() {
			_, err = Select(tab, c, "greeter", rnd)
		})
		if err != nil {
			t.Fatalf("client %s: %v", c.Version, err)
		}
		if allocs != 0 {
			t.Errorf("client %s: Select allocates %.1f times per call", c.Version, allocs)
		}
	}
	// The gateway's admission, forwarding, allocates nothing either.
	c := client(t, "1.5.0", nil, "n1")
	for _, named := range []string{"", "c1-1.4.0"} {
		var d Decision
		allocs := testing.AllocsPerRun(200, func() {
			d, _, _ = Admit(tab, c, "greeter", named, rnd)
		})
		if d != DecisionForward || allocs != 0 {
			t.Errorf("Admit(%q) = %v, allocating %.1f times per call", named, d, allocs)
		}
	}
}

// TestAdmitNamedOlderView covers the calls of a client whose view differs
// from the gateway's: every refusal that remains is one the rule of §4 asks
// for, and nothing else is refused.
func TestAdmitNamedOlderView(t *testing.T) {
	services := []api.Service{svc("greeter",
		sv("2.0.0", ">= 1.0", api.VersionActive),
		sv("1.1.0", ">= 1.0", api.VersionActive),
		sv("1.0.0", ">= 1.0", api.VersionRetired),
	)}
	containers := []api.Container{
		ctr("v2", "n1", "greeter@2.0.0"),
		ctr("v11", "n1", "greeter@1.1.0"),
		ctr("v10", "n2", "greeter@1.0.0"),
	}
	tab := NewTable(services, containers, threeNodes)
	tests := []struct {
		name      string
		requires  map[string]string
		container string
		want      Decision
		errText   string
	}{
		{name: "older active version, newer exists", container: "v11", want: DecisionForward},
		{
			name: "requirement not met", requires: map[string]string{"greeter": "~> 2.0"}, container: "v11", want: DecisionRefuseRetry,
			errText: `container is not the right choice: container "v11" holds greeter@1.1.0, which does not meet client web@1.5.0's requirement "~> 2.0"`,
		},
		{
			name: "retired version", container: "v10", want: DecisionRefuseRetry,
			errText: `container is not the right choice: container "v10" holds greeter@1.0.0, which is retired`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, r, err := Admit(tab, client(t, "1.5.0", tt.requires, ""), "greeter", tt.container, panicRand{})
			if d != tt.want {
				t.Fatalf("decision = %v (%v), want %v", d, err, tt.want)
			}
			if d == DecisionForward {
				if r.Primary().ID != tt.container || r.Version != "1.1.0" || !strings.Contains(r.Reason(), "named container") {
					t.Errorf("route = %s %s (%s)", r.Version, r.Primary().ID, r.Reason())
				}
				return
			}
			if !errors.Is(err, ErrStaleContainer) || err.Error() != tt.errText {
				t.Errorf("err =\n%v\nwant\n%s", err, tt.errText)
			}
		})
	}
}
