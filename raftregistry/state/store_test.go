package state

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixture applies commands at increasing indexes and fails the test on a
// rejected one.
type fixture struct {
	t   *testing.T
	st  *Store
	idx uint64
}

func newFixture(t *testing.T) *fixture {
	return &fixture{t: t, st: New()}
}

func (f *fixture) apply(cmd Command) Result {
	f.t.Helper()
	f.idx++
	return f.st.Apply(f.idx, cmd)
}

func (f *fixture) must(cmd Command) Result {
	f.t.Helper()
	r := f.apply(cmd)
	if r.Err != nil {
		f.t.Fatalf("apply %T: %v", cmd, r.Err)
	}
	return r
}

func spec(node string, refs ...VersionKey) ContainerSpec {
	return ContainerSpec{Node: node, Services: refs, Driver: "exec", Command: "/bin/greeter", DrainTimeout: 30 * time.Second}
}

func (f *fixture) seed() {
	f.must(&RegisterNode{ID: "n1", Address: "127.0.0.1", Gateway: "127.0.0.1:7780"})
	f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.0"})
	f.must(&DeclareVersion{Service: "greeter", Version: "2.0.0", Clients: ">= 2.0, < 3.0"})
}

func TestRegisterNode(t *testing.T) {
	f := newFixture(t)
	r := f.must(&RegisterNode{ID: "n1", Address: "10.0.0.1", Gateway: "10.0.0.1:7780", Labels: map[string]string{"zone": "a"}})
	n := r.Value.(*Node)
	if n.Status != api.NodeReady || n.CreateIndex != 1 || n.ModifyIndex != 1 {
		t.Fatalf("node = %+v", n)
	}
	// The same registration again writes nothing.
	f.must(&RegisterNode{ID: "n1", Address: "10.0.0.1", Gateway: "10.0.0.1:7780", Labels: map[string]string{"zone": "a"}})
	if got := f.st.Index(TableNodes); got != 1 {
		t.Fatalf("nodes index after identical registration = %d, want 1", got)
	}
	r = f.must(&RegisterNode{ID: "n1", Address: "10.0.0.2", Gateway: "10.0.0.2:7780"})
	n = r.Value.(*Node)
	if n.CreateIndex != 1 || n.ModifyIndex != 3 || n.Address != "10.0.0.2" {
		t.Fatalf("updated node = %+v", n)
	}
	if r := f.apply(&RegisterNode{ID: "Bad_Name", Gateway: "x"}); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("bad id: err = %v", r.Err)
	}
}

func TestSetNodeStatus(t *testing.T) {
	f := newFixture(t)
	f.must(&RegisterNode{ID: "n1", Gateway: "g"})
	r := f.must(&SetNodeStatus{ID: "n1", Status: api.NodeDown})
	if r.Value.(*Node).Status != api.NodeDown {
		t.Fatalf("status not down")
	}
	before := f.st.Index(TableNodes)
	f.must(&SetNodeStatus{ID: "n1", Status: api.NodeDown})
	if f.st.Index(TableNodes) != before {
		t.Fatal("unchanged status bumped the index")
	}
	if r := f.apply(&SetNodeStatus{ID: "nope", Status: api.NodeDown}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("unknown node: %v", r.Err)
	}
	if r := f.apply(&SetNodeStatus{ID: "n1", Status: "sleepy"}); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("bad status: %v", r.Err)
	}
	// Registering again marks a down node ready.
	r = f.must(&RegisterNode{ID: "n1", Gateway: "g"})
	if r.Value.(*Node).Status != api.NodeReady {
		t.Fatal("re-registration did not mark the node ready")
	}
}

func TestPurgeNodeRemovesItsContainers(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&RegisterNode{ID: "n2", Gateway: "g2"})
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	f.must(&PutContainer{ID: "c2", Spec: spec("n2", VersionKey{"greeter", "1.0.0"})})
	f.must(&PurgeNode{ID: "n1"})
	_, cs, _ := f.st.Containers("")
	if len(cs) != 1 || cs[0].ID != "c2" {
		t.Fatalf("containers after purge = %v", cs)
	}
	if _, n, _ := f.st.Node("n1"); n != nil {
		t.Fatal("node still there")
	}
	if r := f.apply(&PurgeNode{ID: "n1"}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("purge twice: %v", r.Err)
	}
}

func TestDeclareRetireRollback(t *testing.T) {
	f := newFixture(t)
	r := f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.0"})
	v := r.Value.(*ServiceVersion)
	if v.State != api.VersionActive || v.CreateIndex != 1 {
		t.Fatalf("declared = %+v", v)
	}
	// Idempotent.
	f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.0"})
	if f.st.Index(TableServices) != 1 {
		t.Fatal("identical declaration bumped the index")
	}
	// A new range is an update in place.
	r = f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.1"})
	if v := r.Value.(*ServiceVersion); v.Clients != ">= 1.0, < 2.1" || v.CreateIndex != 1 || v.ModifyIndex != 3 {
		t.Fatalf("range update = %+v", v)
	}
	r = f.must(&RetireVersion{Service: "greeter", Version: "1.0.0", Now: t0})
	v = r.Value.(*ServiceVersion)
	if v.State != api.VersionDraining || v.DrainStartedAt == nil || !v.DrainStartedAt.Equal(t0) {
		t.Fatalf("retiring = %+v", v)
	}
	// Declaring a draining version again cancels the drain.
	r = f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.1"})
	if v := r.Value.(*ServiceVersion); v.State != api.VersionActive || v.DrainStartedAt != nil {
		t.Fatalf("cancelled drain = %+v", v)
	}
	r = f.must(&RetireVersion{Service: "greeter", Version: "1.0.0", Now: t0})
	mi := r.Value.(*ServiceVersion).ModifyIndex
	r = f.must(&MarkRetired{Versions: []RetireDue{{Service: "greeter", Version: "1.0.0", ModifyIndex: mi}}, Now: t0.Add(time.Second)})
	if got := r.Value.([]*ServiceVersion); len(got) != 1 || got[0].State != api.VersionRetired || got[0].RetiredAt == nil {
		t.Fatalf("retired = %+v", got)
	}
	// Retiring a retired version is a no-op; declaring it again is a rollback.
	before := f.st.Index(TableServices)
	f.must(&RetireVersion{Service: "greeter", Version: "1.0.0", Now: t0})
	if f.st.Index(TableServices) != before {
		t.Fatal("retiring a retired version bumped the index")
	}
	r = f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.1"})
	if v := r.Value.(*ServiceVersion); v.State != api.VersionActive || v.RetiredAt != nil {
		t.Fatalf("rollback = %+v", v)
	}
	if r := f.apply(&RetireVersion{Service: "greeter", Version: "9.9.9", Now: t0}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("retire unknown: %v", r.Err)
	}
}

func TestMarkRetiredSkipsChangedVersions(t *testing.T) {
	f := newFixture(t)
	f.must(&DeclareVersion{Service: "a", Version: "1.0.0", Clients: ">= 0"})
	r := f.must(&RetireVersion{Service: "a", Version: "1.0.0", Now: t0})
	stale := r.Value.(*ServiceVersion).ModifyIndex
	f.must(&DeclareVersion{Service: "a", Version: "1.0.0", Clients: ">= 0"}) // drain cancelled
	f.must(&RetireVersion{Service: "a", Version: "1.0.0", Now: t0})          // and started again
	r = f.must(&MarkRetired{Versions: []RetireDue{{Service: "a", Version: "1.0.0", ModifyIndex: stale}}, Now: t0})
	if got := r.Value.([]*ServiceVersion); len(got) != 0 {
		t.Fatalf("retired with a stale modify index: %+v", got)
	}
	if v := f.st.Version(VersionKey{"a", "1.0.0"}); v.State != api.VersionDraining {
		t.Fatalf("state = %s", v.State)
	}
}

// A purge asked only for a down node refuses a ready one (its agent lives)
// and changes nothing; once the node is down it goes, containers and all.
func TestPurgeNodeOnlyIfDown(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	before := f.st.Index(TableNodes, TableContainers)
	r := f.apply(&PurgeNode{ID: "n1", OnlyIfDown: true})
	if !errors.Is(r.Err, ErrConflict) || !strings.Contains(r.Err.Error(), `node "n1" is ready`) ||
		!strings.Contains(r.Err.Error(), "?force=true") {
		t.Fatalf("purge of a ready node: %v", r.Err)
	}
	if f.st.Index(TableNodes, TableContainers) != before {
		t.Fatal("a refused purge changed the state")
	}
	f.must(&SetNodeStatus{ID: "n1", Status: api.NodeDown})
	f.must(&PurgeNode{ID: "n1", OnlyIfDown: true})
	if _, c, _ := f.st.Container("c1"); c != nil {
		t.Fatal("purged node's container remains")
	}
}

func TestPutContainer(t *testing.T) {
	f := newFixture(t)
	f.seed()
	s1 := spec("n1", VersionKey{"greeter", "1.0.0"})
	zero := uint64(0)
	r := f.must(&PutContainer{ID: "c1", Spec: s1, CAS: &zero})
	c := r.Value.(*Container)
	if c.Desired != api.DesiredPresent || c.CreateIndex != f.idx {
		t.Fatalf("container = %+v", c)
	}
	created := c.ModifyIndex
	// Identical PUT: no-op.
	f.must(&PutContainer{ID: "c1", Spec: s1})
	if f.st.Index(TableContainers) != created {
		t.Fatal("identical put bumped the index")
	}
	// Create-only on an existing id: conflict.
	if r := f.apply(&PutContainer{ID: "c1", Spec: s1, CAS: &zero}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("cas=0 on existing: %v", r.Err)
	}
	// A different body without cas: conflict.
	s2 := spec("n1", VersionKey{"greeter", "2.0.0"})
	if r := f.apply(&PutContainer{ID: "c1", Spec: s2}); !errors.Is(r.Err, ErrConflict) ||
		!strings.Contains(r.Err.Error(), "?cas=") {
		t.Fatalf("different body: %v", r.Err)
	}
	// With a stale cas: conflict. With the right one: written.
	stale := created - 1
	if r := f.apply(&PutContainer{ID: "c1", Spec: s2, CAS: &stale}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("stale cas: %v", r.Err)
	}
	// With the right one, what runs still does not change in place.
	if r := f.apply(&PutContainer{ID: "c1", Spec: s2, CAS: &created}); !errors.Is(r.Err, ErrConflict) ||
		!strings.Contains(r.Err.Error(), "services differs") || !strings.Contains(r.Err.Error(), "declare a new container") {
		t.Fatalf("cas change of what runs: %v", r.Err)
	}
	longer := s1
	longer.DrainTimeout = time.Minute
	r = f.must(&PutContainer{ID: "c1", Spec: longer, CAS: &created})
	if got := r.Value.(*Container); got.Spec.DrainTimeout != time.Minute || got.CreateIndex != c.CreateIndex {
		t.Fatalf("cas write = %+v", got)
	}
	// cas on a missing record.
	one := uint64(1)
	if r := f.apply(&PutContainer{ID: "c9", Spec: s1, CAS: &one}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("cas on missing: %v", r.Err)
	}
	// Undeclared version, unknown node.
	bad := spec("n1", VersionKey{"greeter", "1.0.0"}, VersionKey{"orders", "1.4.2"})
	r = f.apply(&PutContainer{ID: "c3", Spec: bad})
	var fe *FieldError
	if !errors.As(r.Err, &fe) || fe.Field != "services[1].version" {
		t.Fatalf("undeclared version: %v", r.Err)
	}
	if r := f.apply(&PutContainer{ID: "c3", Spec: spec("n9", VersionKey{"greeter", "1.0.0"})}); !errors.As(r.Err, &fe) || fe.Field != "node" {
		t.Fatalf("unknown node: %v", r.Err)
	}
	if _, c, _ := f.st.Container("c3"); c != nil {
		t.Fatal("a rejected container was written")
	}
}

// What runs is never changed in place: each field that decides it is
// refused with 409 even with the right ?cas, naming the field; drain_timeout
// and restart change in place.
func TestPutContainerRefusesChangesOfWhatRuns(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&RegisterNode{ID: "n2", Address: "127.0.0.1", Gateway: "127.0.0.1:7781"})
	base := spec("n1", VersionKey{"greeter", "1.0.0"})
	base.Args, base.Env = []string{"--a"}, map[string]string{"K": "V"}
	base.Health = &HealthCheck{HTTP: "/healthz", Interval: time.Second, Timeout: time.Second}
	f.must(&PutContainer{ID: "c1", Spec: base})
	for _, tc := range []struct {
		field  string
		change func(s *ContainerSpec)
	}{
		{"node", func(s *ContainerSpec) { s.Node = "n2" }},
		{"services", func(s *ContainerSpec) { s.Services = []VersionKey{{"greeter", "2.0.0"}} }},
		{"config.command", func(s *ContainerSpec) { s.Command = "/bin/other" }},
		{"config.args", func(s *ContainerSpec) { s.Args = []string{"--b"} }},
		{"config.env", func(s *ContainerSpec) { s.Env = map[string]string{"K": "W"} }},
		{"health", func(s *ContainerSpec) {
			s.Health = &HealthCheck{TCP: true, Interval: time.Second, Timeout: time.Second}
		}},
	} {
		_, cur, _ := f.st.Container("c1")
		cas := cur.ModifyIndex
		next := base
		tc.change(&next)
		r := f.apply(&PutContainer{ID: "c1", Spec: next, CAS: &cas})
		if !errors.Is(r.Err, ErrConflict) || !strings.Contains(r.Err.Error(), `container "c1": `+tc.field+" differs") {
			t.Errorf("%s changed in place: err = %v", tc.field, r.Err)
		}
	}
	_, cur, _ := f.st.Container("c1")
	cas := cur.ModifyIndex
	next := base
	next.DrainTimeout = time.Minute
	next.Restart = &RestartPolicy{Attempts: 3, Delay: time.Second}
	if r := f.apply(&PutContainer{ID: "c1", Spec: next, CAS: &cas}); r.Err != nil {
		t.Fatalf("drain_timeout and restart in place: %v", r.Err)
	}
}

// A container declared on a retired version would never start: refused,
// naming the field and the way back. A draining version is accepted (it
// still serves until it retires).
func TestPutContainerRefusesRetiredVersion(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&RetireVersion{Service: "greeter", Version: "1.0.0", Now: t0})
	f.must(&PutContainer{ID: "on-draining", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	f.must(&DeleteContainer{ID: "on-draining"})
	f.must(&MarkRetired{Versions: f.st.DueRetirements(t0), Now: t0})
	if v := f.st.Version(VersionKey{"greeter", "1.0.0"}); v.State != api.VersionRetired {
		t.Fatalf("1.0.0 is %s", v.State)
	}
	before := f.st.Index(TableContainers)
	r := f.apply(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "2.0.0"}, VersionKey{"greeter2", "1.0.0"})})
	if r.Err == nil {
		t.Fatal("undeclared version accepted")
	}
	f.must(&DeclareVersion{Service: "other", Version: "1.0.0", Clients: ">= 1.0"})
	r = f.apply(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"other", "1.0.0"}, VersionKey{"greeter", "1.0.0"})})
	var fe *FieldError
	if !errors.As(r.Err, &fe) || r.Err.Error() != "services[1].version: greeter 1.0.0 is retired; declare it again to roll back" {
		t.Fatalf("retired version: err = %v", r.Err)
	}
	if f.st.Index(TableContainers) != before {
		t.Fatal("a refused container was written")
	}
	// Declared again (a rollback), it is accepted.
	f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.0"})
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
}

func TestDeleteContainerAndReap(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&PutContainer{ID: "never-started", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	f.must(&DeleteContainer{ID: "never-started"})
	if _, c, _ := f.st.Container("never-started"); c != nil {
		t.Fatal("a container never started should leave at once")
	}
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:21000", UpdatedAt: t0}})
	r := f.must(&DeleteContainer{ID: "c1"})
	if r.Value.(*Container).Desired != api.DesiredDeleted {
		t.Fatal("not marked deleted")
	}
	f.must(&DeleteContainer{ID: "c1"}) // idempotent
	if _, c, _ := f.st.Container("c1"); c == nil || c.Status.State != api.ContainerRunning {
		t.Fatal("a running deleted container must stay until stopped")
	}
	// Declaring it again cancels the delete.
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	if _, c, _ := f.st.Container("c1"); c.Desired != api.DesiredPresent || c.Status == nil {
		t.Fatalf("re-declared = %+v", c)
	}
	f.must(&DeleteContainer{ID: "c1"})
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: ContainerStatus{State: api.ContainerStopped, UpdatedAt: t0}})
	if _, c, _ := f.st.Container("c1"); c != nil {
		t.Fatal("a stopped deleted container must be reaped")
	}
	if r := f.apply(&DeleteContainer{ID: "c1"}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("delete missing: %v", r.Err)
	}
}

func TestSetContainerStatus(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&RegisterNode{ID: "n2", Gateway: "g2"})
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	st := ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:21000", PID: 42,
		Services: []ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing}}, UpdatedAt: t0}
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: st})
	idx := f.st.Index(TableContainers)
	st.UpdatedAt = t0.Add(time.Second)
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: st})
	if f.st.Index(TableContainers) != idx {
		t.Fatal("an identical report bumped the index")
	}
	if r := f.apply(&SetContainerStatus{ID: "c1", Node: "n2", Status: st}); !errors.Is(r.Err, ErrPermission) {
		t.Fatalf("other node's agent: %v", r.Err)
	}
	if r := f.apply(&SetContainerStatus{ID: "c1", Status: ContainerStatus{State: "dancing"}}); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("bad state: %v", r.Err)
	}
	if r := f.apply(&SetContainerStatus{ID: "nope", Status: st}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("unknown container: %v", r.Err)
	}
}

// TestCallsPerMinuteKeepsModifyIndex: a report that changes only the calls
// per minute (display) is recorded, wakes watchers of the table, and keeps
// the container's modify index; one that changes more bumps it.
func TestCallsPerMinuteKeepsModifyIndex(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	st := ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:21000", PID: 42,
		Services: []ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing}}, UpdatedAt: t0}
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: st})
	_, before, _ := f.st.Container("c1")
	st.Services = []ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing, CallsPerMinute: 120}}
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: st})
	_, after, _ := f.st.Container("c1")
	if after.Status.Services[0].CallsPerMinute != 120 {
		t.Fatalf("calls per minute %d, want 120 recorded", after.Status.Services[0].CallsPerMinute)
	}
	if after.ModifyIndex != before.ModifyIndex {
		t.Fatalf("a calls-per-minute report bumped the container's modify index %d → %d", before.ModifyIndex, after.ModifyIndex)
	}
	if f.st.Index(TableContainers) <= before.ModifyIndex {
		t.Fatal("a calls-per-minute report did not advance the table's index: the UI's blocking query would not see it")
	}
	st.Services = []ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing, CallsPerMinute: 120, Inflight: 3}}
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: st})
	if _, c, _ := f.st.Container("c1"); c.ModifyIndex == before.ModifyIndex {
		t.Fatal("an in-flight report kept the modify index")
	}
	st.Services = []ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing, CallsPerMinute: -1}}
	if r := f.apply(&SetContainerStatus{ID: "c1", Node: "n1", Status: st}); !errors.Is(r.Err, ErrInvalid) || !strings.Contains(r.Err.Error(), "calls_per_minute") {
		t.Fatalf("negative calls per minute: %v", r.Err)
	}
}

func TestTokens(t *testing.T) {
	f := newFixture(t)
	f.must(&CreateToken{AccessorID: "a1", SecretHash: "h1", Role: api.RoleOperator})
	if tok := f.st.TokenBySecretHash("h1"); tok == nil || tok.Role != api.RoleOperator {
		t.Fatalf("lookup = %+v", tok)
	}
	if r := f.apply(&CreateToken{AccessorID: "a1", SecretHash: "h2", Role: api.RoleRead}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("duplicate accessor: %v", r.Err)
	}
	if r := f.apply(&CreateToken{AccessorID: "a2", SecretHash: "h2", Role: api.RoleAgent}); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("agent without node: %v", r.Err)
	}
	if r := f.apply(&CreateToken{AccessorID: "a2", SecretHash: "h2", Role: "root"}); !errors.Is(r.Err, ErrInvalid) {
		t.Fatalf("bad role: %v", r.Err)
	}
	f.must(&DeleteToken{AccessorID: "a1"})
	if f.st.TokenBySecretHash("h1") != nil {
		t.Fatal("revoked token still found")
	}
	if r := f.apply(&DeleteToken{AccessorID: "a1"}); !errors.Is(r.Err, ErrNotFound) {
		t.Fatalf("revoke twice: %v", r.Err)
	}
}

func TestServers(t *testing.T) {
	f := newFixture(t)
	f.must(&SetServer{ID: "s1", HTTPAddr: "http://127.0.0.1:7700"})
	f.must(&SetServer{ID: "s1", HTTPAddr: "http://127.0.0.1:7700"})
	if f.st.Index(TableServers) != 1 {
		t.Fatal("identical server bumped the index")
	}
	if got := f.st.Servers()["s1"]; got != "http://127.0.0.1:7700" {
		t.Fatalf("servers = %v", f.st.Servers())
	}
	f.must(&RemoveServer{ID: "s1"})
	if len(f.st.Servers()) != 0 {
		t.Fatal("server not removed")
	}
}

func TestWatchWakesOnlyChangedTables(t *testing.T) {
	f := newFixture(t)
	f.seed()
	_, nodesWS := f.st.Watch(TableNodes)
	_, svcWS := f.st.Watch(TableServices)
	f.must(&DeclareVersion{Service: "greeter", Version: "3.0.0", Clients: ">= 3.0"})
	select {
	case <-svcWS[0]:
	default:
		t.Fatal("services watcher not woken")
	}
	select {
	case <-nodesWS[0]:
		t.Fatal("nodes watcher woken by a services write")
	default:
	}
	// A rejected command wakes nobody.
	_, svcWS = f.st.Watch(TableServices)
	f.apply(&DeclareVersion{Service: "greeter", Version: "x", Clients: ">= 3.0"})
	select {
	case <-svcWS[0]:
		t.Fatal("a rejected command woke a watcher")
	default:
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: ContainerStatus{State: api.ContainerRunning, UpdatedAt: t0,
		Services: []ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing, Inflight: 3}}}})
	f.must(&RetireVersion{Service: "greeter", Version: "2.0.0", Now: t0})
	f.must(&CreateToken{AccessorID: "a1", SecretHash: "h1", Role: api.RoleAgent, Node: "n1"})
	f.must(&SetServer{ID: "s1", HTTPAddr: "http://x"})
	snap := f.st.Snapshot()
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	read, err := ReadSnapshot(&buf)
	if err != nil {
		t.Fatal(err)
	}
	restored := New()
	_, ws := restored.Watch(TableContainers)
	restored.Restore(read)
	select {
	case <-ws[0]:
	default:
		t.Fatal("restore did not wake watchers")
	}
	if !restored.Snapshot().Equal(snap) {
		t.Fatal("restored store differs from the original")
	}
	if restored.LastIndex() != f.st.LastIndex() || restored.Index(TableServices) != f.st.Index(TableServices) {
		t.Fatal("indexes not restored")
	}
	if restored.TokenBySecretHash("h1") == nil {
		t.Fatal("token hash index not rebuilt")
	}
	if _, err := ReadSnapshot(strings.NewReader(`{"version": 99}`)); err == nil {
		t.Fatal("unknown snapshot version accepted")
	}
}

func TestEncodeDecode(t *testing.T) {
	cmds := []Command{
		&RegisterNode{ID: "n1", Gateway: "g", Labels: map[string]string{"a": "b"}},
		&SetNodeStatus{ID: "n1", Status: "down"}, &PurgeNode{ID: "n1"},
		&DeclareVersion{Service: "s", Version: "1.0.0", Clients: ">= 1"},
		&RetireVersion{Service: "s", Version: "1.0.0", Now: t0},
		&MarkRetired{Versions: []RetireDue{{Service: "s", Version: "1.0.0", ModifyIndex: 3}}, Now: t0},
		&PutContainer{ID: "c", Spec: spec("n1", VersionKey{"s", "1.0.0"})},
		&DeleteContainer{ID: "c"}, &SetContainerStatus{ID: "c", Status: ContainerStatus{State: "running", UpdatedAt: t0}},
		&CreateToken{AccessorID: "a", SecretHash: "h", Role: "read"}, &DeleteToken{AccessorID: "a"},
		&SetServer{ID: "s", HTTPAddr: "h"}, &RemoveServer{ID: "s"},
	}
	for _, c := range cmds {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if CommandType(b[0]) != c.Type() {
			t.Fatalf("%T: type byte %d", c, b[0])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
		b2, _ := Encode(got)
		if !bytes.Equal(b, b2) {
			t.Fatalf("%T: round trip differs:\n%s\n%s", c, b, b2)
		}
	}
	if c, err := Decode([]byte{byte(IgnoreUnknownFlag | 0x7f), '{', '}'}); c != nil || err != nil {
		t.Fatalf("ignorable unknown type: %v %v", c, err)
	}
	if _, err := Decode([]byte{0x7f, '{', '}'}); err == nil {
		t.Fatal("unknown type without the flag decoded")
	}
	if _, err := Decode(nil); err == nil {
		t.Fatal("empty entry decoded")
	}
	if _, err := Decode([]byte{byte(PutContainerType), '{'}); err == nil {
		t.Fatal("broken body decoded")
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range []Command{
		&PutContainer{ID: "c", Spec: spec("n1", VersionKey{"s", "1.0.0"})},
		&DeclareVersion{Service: "s", Version: "1.0.0", Clients: ">= 1"},
		&SetContainerStatus{ID: "c", Status: ContainerStatus{State: "running"}},
		&MarkRetired{Versions: []RetireDue{{Service: "s", Version: "1"}}},
	} {
		b, _ := Encode(c)
		f.Add(b)
	}
	f.Add([]byte{0x81, '{', '}'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil || c == nil {
			return
		}
		// Whatever decodes must apply without panicking, and a rejected
		// command must leave the store as it was.
		st := New()
		st.Apply(1, &RegisterNode{ID: "n1", Gateway: "g"})
		st.Apply(2, &DeclareVersion{Service: "s", Version: "1.0.0", Clients: ">= 0"})
		before := st.Snapshot()
		r := st.Apply(3, c)
		if r.Err != nil {
			after := st.Snapshot()
			after.LastIndex = before.LastIndex
			if !after.Equal(before) {
				t.Fatalf("rejected %T changed the store: %v", c, r.Err)
			}
		}
	})
}
