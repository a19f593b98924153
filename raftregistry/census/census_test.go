package census

import (
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func client(inst, name, ver string, calls ...string) Identity {
	return Identity{Instance: inst, Kind: KindClient, Name: name, Version: ver, Calls: calls}
}

func TestLocalAcknowledgementNeverGoesBack(t *testing.T) {
	l := NewLocal(10 * time.Second)
	id := client("a", "web", "1.5.0", "orders")
	l.Begin(id, TableServices, 7, t0)
	l.End("a", TableServices, t0)
	// After a failure the SDK asks with index 0: that acknowledges nothing.
	l.Begin(id, TableServices, 0, t0)
	rep := l.Report(t0)
	if len(rep) != 1 || rep[0].Ack != 7 || rep[0].Open != 1 {
		t.Fatalf("report = %+v, want one entry at ack 7, open 1", rep)
	}
}

func TestLocalLivenessByOpenRequestOrTTL(t *testing.T) {
	ttl := 10 * time.Second
	l := NewLocal(ttl)
	l.Begin(client("open", "web", "1.0.0"), TableServices, 3, t0)
	l.Begin(client("gone", "web", "1.0.0"), TableServices, 3, t0)
	l.End("gone", TableServices, t0.Add(time.Second))
	if rep := l.Report(t0.Add(ttl)); len(rep) != 2 {
		t.Fatalf("within the ttl both are live, got %+v", rep)
	}
	rep := l.Report(t0.Add(time.Second + ttl))
	if len(rep) != 1 || rep[0].Instance != "open" {
		t.Fatalf("after the ttl only the open one is live, got %+v", rep)
	}
	if l.Changed() {
		t.Fatal("Changed after Report with nothing new")
	}
	l.Begin(client("open", "web", "1.0.0"), TableServices, 4, t0.Add(time.Minute))
	if !l.Changed() {
		t.Fatal("an acknowledgement that moved is a change")
	}
}

// TestLocalCallsOnlyGrow: a request the client gave up on may begin on the
// server after the one that replaced it (seen in a real run: the census lost
// the client's call and would have let its only version be retired).
func TestLocalCallsOnlyGrow(t *testing.T) {
	l := NewLocal(10 * time.Second)
	l.Begin(client("a", "web", "1.5.0", "greeter"), TableServices, 7, t0)
	l.Begin(client("a", "web", "1.5.0"), TableServices, 7, t0) // the older request, handled late
	l.Begin(client("a", "web", "1.5.0", "orders"), TableServices, 7, t0)
	rep := l.Report(t0)
	if len(rep) != 1 || strings.Join(rep[0].Calls, ",") != "greeter,orders" {
		t.Fatalf("report = %+v, want the calls greeter and orders", rep)
	}
}

func TestLocalLeave(t *testing.T) {
	l := NewLocal(10 * time.Second)
	for _, table := range []string{TableServices, TableContainers} {
		l.Begin(client("gone", "web", "1.0.0"), table, 3, t0)
		l.End("gone", table, t0)
	}
	l.Begin(client("stays", "web", "1.0.0"), TableServices, 3, t0)
	l.Report(t0)
	l.Leave("gone")
	if !l.Changed() {
		t.Fatal("a watcher that left is a change")
	}
	rep := l.Report(t0.Add(time.Second))
	if len(rep) != 1 || rep[0].Instance != "stays" {
		t.Fatalf("after Leave, within the ttl, only the other is live: %+v", rep)
	}
	l.End("gone", TableServices, t0.Add(2*time.Second)) // a request that was still open
	if rep := l.Report(t0.Add(2 * time.Second)); len(rep) != 1 {
		t.Fatalf("a request ending after Leave brings nothing back: %+v", rep)
	}

	// A Leave for a watcher with a request open (someone else's, or sent
	// before the server saw the request end) keeps it until the request
	// ends; a new request of it clears the Leave.
	l.Begin(client("waiting", "web", "1.0.0"), TableServices, 3, t0)
	l.Leave("waiting")
	if rep := l.Report(t0.Add(3 * time.Second)); len(rep) != 2 {
		t.Fatalf("a watcher with a request open stays after Leave: %+v", rep)
	}
	l.End("waiting", TableServices, t0.Add(4*time.Second))
	if rep := l.Report(t0.Add(4 * time.Second)); len(rep) != 1 {
		t.Fatalf("it goes when its last request ends: %+v", rep)
	}
	l.Begin(client("back", "web", "1.0.0"), TableServices, 3, t0)
	l.Leave("back")
	l.Begin(client("back", "web", "1.0.0"), TableServices, 3, t0.Add(time.Second))
	l.End("back", TableServices, t0.Add(2*time.Second))
	if rep := l.Report(t0.Add(5 * time.Second)); len(rep) != 2 {
		t.Fatalf("a new request clears the Leave: %+v", rep)
	}
}

func TestFleetInForcePerTable(t *testing.T) {
	ttl := 10 * time.Second
	f := NewFleet(t0, []string{"s1", "s2"}, ttl)
	now := t0.Add(time.Second)
	f.Report("s1", []Entry{
		{Identity: client("a", "web", "1.0.0"), Table: TableServices, Ack: 10, Open: 1},
		{Identity: client("a", "web", "1.0.0"), Table: TableContainers, Ack: 5, Open: 1},
	}, now)
	tables := map[string]uint64{TableServices: 10, TableContainers: 12}
	if ok, _ := f.InForce(10, tables, now); ok {
		t.Fatal("in force before s2 reported: a new leader must not trust an incomplete census")
	}
	f.Report("s2", []Entry{{Identity: client("b", "web", "1.0.0"), Table: TableServices, Ack: 9, Open: 1}}, now)
	ok, lag := f.InForce(10, map[string]uint64{TableServices: 10}, now)
	if ok || len(lag) != 1 || lag[0].Instance != "b" || lag[0].Need != 10 || lag[0].Server != "s2" {
		t.Fatalf("InForce(10) = %v %+v, want b lagging on s2 at 9, need 10", ok, lag)
	}
	// A change at 11 of containers: a's ack of containers (5) is behind.
	ok, lag = f.InForce(11, map[string]uint64{TableContainers: 12}, now)
	if ok || len(lag) != 1 || lag[0].Instance != "a" || lag[0].Need != 11 {
		t.Fatalf("InForce(11) on containers = %v %+v", ok, lag)
	}
	// A table whose current index is below the change needs only its own
	// current index: a write to another table does not wait on it.
	f.Report("s2", []Entry{{Identity: client("b", "web", "1.0.0"), Table: TableServices, Ack: 10, Open: 1}}, now)
	if ok, lag := f.InForce(20, map[string]uint64{TableServices: 10}, now); !ok {
		t.Fatalf("InForce(20) with services at 10 = false, lagging %+v", lag)
	}
}

func TestFleetCompleteAfterTTL(t *testing.T) {
	ttl := 10 * time.Second
	f := NewFleet(t0, []string{"s1", "s2"}, ttl)
	f.Report("s1", nil, t0)
	if f.Complete(t0.Add(ttl - time.Millisecond)) {
		t.Fatal("complete before s2 reported and before the ttl")
	}
	if got := f.Missing(); len(got) != 1 || got[0] != "s2" {
		t.Fatalf("Missing = %v", got)
	}
	if !f.Complete(t0.Add(ttl)) {
		t.Fatal("not complete once the ttl passed")
	}
}

func TestFleetLivenessAndMerge(t *testing.T) {
	ttl := 10 * time.Second
	f := NewFleet(t0, []string{"s1", "s2"}, ttl)
	// The watcher moved from s1 (idle 2s there) to s2 (open).
	f.Report("s1", []Entry{{Identity: client("a", "web", "1.0.0", "orders"), Table: TableServices, Ack: 8, Idle: 2 * time.Second}}, t0)
	f.Report("s2", []Entry{{Identity: client("a", "web", "1.0.0", "orders"), Table: TableServices, Ack: 9, Open: 1}}, t0)
	f.Observe(TableServices, 9, t0)
	f.Observe(TableServices, 12, t0.Add(time.Second))
	ws := f.Watchers(t0.Add(3*time.Second), map[string]uint64{TableServices: 12})
	if len(ws) != 1 || ws[0].Server != "s2" || ws[0].Tables[0].Ack != 9 || ws[0].Tables[0].Lag != 3 || ws[0].Tables[0].LagTime != 2*time.Second {
		t.Fatalf("Watchers = %+v, want one on s2 at 9, lag 3 indexes, 2s", ws)
	}
	// A server that stops reporting: its open requests die with its report.
	later := t0.Add(ttl)
	if ws := f.Watchers(later, nil); len(ws) != 0 {
		t.Fatalf("watchers of a silent server still live after the ttl: %+v", ws)
	}
	if ok, lag := f.InForce(12, map[string]uint64{TableServices: 12}, later); !ok {
		t.Fatalf("a dead watcher holds a change back: %+v", lag)
	}
}

func TestCohorts(t *testing.T) {
	ws := []Watcher{
		{Identity: client("a", "web", "1.5.0", "orders")},
		{Identity: client("b", "web", "1.5.0", "users")},
		{Identity: Identity{Instance: "n1", Kind: KindAgent, Name: AgentName, Version: "node-1"}},
		{Identity: client("c", "batch", "2.0.0")},
	}
	cs := Cohorts(ws)
	if len(cs) != 2 || cs[1].String() != "web@1.5.0, 2 instances" || strings.Join(cs[1].Calls, ",") != "orders,users" {
		t.Fatalf("Cohorts = %+v", cs)
	}
	if cs[0].String() != "batch@2.0.0, 1 instance" {
		t.Fatalf("Cohorts[0] = %s", cs[0])
	}
}

// fleet is one ready node with a running container per given version.
func fleet(versions map[string]string, running ...string) ([]api.Service, []api.Container, []api.Node) {
	svc := api.Service{Name: "orders"}
	for v, r := range versions {
		svc.Versions = append(svc.Versions, api.ServiceVersion{Service: "orders", Version: v, Clients: r, State: api.VersionActive})
	}
	var cs []api.Container
	for _, v := range running {
		cs = append(cs, api.Container{ID: "c-" + v, Node: "n1", Desired: "present",
			Services: []api.ServiceRef{{Service: "orders", Version: v}},
			Status:   &api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:1"}})
	}
	return []api.Service{svc}, cs, []api.Node{{ID: "n1", Status: api.NodeReady, Gateway: "127.0.0.1:2"}}
}

func TestStranded(t *testing.T) {
	web := Cohort{Name: "web", Version: "1.5.0", Instances: 3, Calls: []string{"orders"}}
	idle := Cohort{Name: "web", Version: "1.6.0", Instances: 1, Calls: []string{}}
	retire := Change{Service: "orders", Version: "1.0.0", Retire: true}

	// Only 1.0.0 serves 1.x: retiring it strands web@1.5.0, not a client
	// that does not call orders.
	s, c, n := fleet(map[string]string{"1.0.0": ">= 1.0, < 2.0", "2.0.0": ">= 2.0"}, "1.0.0", "2.0.0")
	got := Stranded(s, c, n, []Cohort{web, idle}, retire)
	if len(got) != 1 || got[0].String() != "web@1.5.0, 3 instances" {
		t.Fatalf("Stranded = %v, want web@1.5.0", got)
	}
	err := (&StrandedError{Change: retire, Cohorts: got}).Error()
	if !strings.Contains(err, "web@1.5.0, 3 instances") || !strings.Contains(err, "force=true") {
		t.Fatalf("error %q names neither the cohort nor the way out", err)
	}

	// 1.1.0 serves them too and runs: nothing stranded.
	s, c, n = fleet(map[string]string{"1.0.0": ">= 1.0, < 2.0", "1.1.0": ">= 1.0, < 2.0"}, "1.0.0", "1.1.0")
	if got := Stranded(s, c, n, []Cohort{web}, retire); len(got) != 0 {
		t.Fatalf("Stranded with an alternative = %v", got)
	}
	// 1.1.0 declared but its container not running: not a candidate.
	s, c, n = fleet(map[string]string{"1.0.0": ">= 1.0, < 2.0", "1.1.0": ">= 1.0, < 2.0"}, "1.0.0")
	if got := Stranded(s, c, n, []Cohort{web}, Change{Service: "orders", Version: "1.1.0", Retire: true}); len(got) != 0 {
		t.Fatalf("retiring a version the cohort is not routed to stranded %v", got)
	}
	if got := Stranded(s, c, n, []Cohort{web}, retire); len(got) != 1 {
		t.Fatalf("retiring 1.0.0 while 1.1.0 does not run: Stranded = %v, want web", got)
	}

	// Narrowing 1.0.0 to >= 1.6 excludes web@1.5.0 with no alternative.
	s, c, n = fleet(map[string]string{"1.0.0": ">= 1.0, < 2.0"}, "1.0.0")
	narrow := Change{Service: "orders", Version: "1.0.0", Clients: ">= 1.6, < 2.0"}
	if got := Stranded(s, c, n, []Cohort{web}, narrow); len(got) != 1 {
		t.Fatalf("narrowing: Stranded = %v, want web", got)
	}
	if got := Stranded(s, c, n, []Cohort{web}, Change{Service: "orders", Version: "1.0.0", Clients: ">= 1.5, < 2.0"}); len(got) != 0 {
		t.Fatalf("a narrowing that still admits web: Stranded = %v", got)
	}

	// Requirements count: a client that requires ~> 1.0.0 has no use for 1.1.0.
	s, c, n = fleet(map[string]string{"1.0.0": ">= 1.0, < 2.0", "1.1.0": ">= 1.0, < 2.0"}, "1.0.0", "1.1.0")
	pinned := Cohort{Name: "web", Version: "1.5.0", Instances: 1, Calls: []string{"orders"}, Requires: map[string]string{"orders": "~> 1.0.0"}}
	if got := Stranded(s, c, n, []Cohort{pinned}, retire); len(got) != 1 {
		t.Fatalf("a pinned client: Stranded = %v, want it", got)
	}
	if got := Served(s, c, n, []Cohort{web, pinned}, "orders", "1.0.0"); len(got) != 1 || got[0].Requires == nil {
		t.Fatalf("Served(1.0.0) = %v, want the pinned cohort only", got)
	}
}

// A watcher short on one server but acknowledged on another is not
// lagging: InForce merges the instances some server has short.
func TestFleetInForceMergesShortAcrossServers(t *testing.T) {
	ttl := 10 * time.Second
	f := NewFleet(t0, []string{"s1", "s2"}, ttl)
	now := t0.Add(time.Second)
	f.Report("s1", []Entry{
		{Identity: client("a", "web", "1.0.0"), Table: TableServices, Ack: 8, Idle: time.Second},
		{Identity: client("b", "web", "1.0.0"), Table: TableServices, Ack: 7, Idle: 2 * time.Second},
	}, now)
	f.Report("s2", []Entry{
		{Identity: client("a", "web", "1.0.0"), Table: TableServices, Ack: 10, Open: 1},
		{Identity: client("b", "web", "1.0.0"), Table: TableServices, Ack: 9, Open: 1},
	}, now)
	ok, lag := f.InForce(10, map[string]uint64{TableServices: 10}, now)
	if ok || len(lag) != 1 || lag[0].Instance != "b" || lag[0].Ack != 9 || lag[0].Server != "s2" {
		t.Fatalf("InForce(10) = %v %+v, want only b lagging, at 9 on s2", ok, lag)
	}
	if ok, lag := f.InForce(9, map[string]uint64{TableServices: 10}, now); !ok {
		t.Fatalf("InForce(9) = false, lagging %+v: a and b acknowledged 9 on s2", lag)
	}
}
