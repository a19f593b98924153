package state

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// retire drains a version and marks it retired, as the leader would.
func (f *fixture) retire(svc, ver string) {
	f.t.Helper()
	r := f.must(&RetireVersion{Service: svc, Version: ver, Now: t0})
	mi := r.Value.(*ServiceVersion).ModifyIndex
	f.must(&MarkRetired{Versions: []RetireDue{{Service: svc, Version: ver, ModifyIndex: mi}}, Now: t0})
	if v := f.st.Version(VersionKey{svc, ver}); v.State != api.VersionRetired {
		f.t.Fatalf("%s@%s is %s, want retired", svc, ver, v.State)
	}
}

func wantErr(t *testing.T, r Result, sentinel error, msg string) {
	t.Helper()
	if !errors.Is(r.Err, sentinel) || !strings.Contains(r.Err.Error(), msg) {
		t.Fatalf("err = %v, want %v containing %q", r.Err, sentinel, msg)
	}
}

func TestPurgeVersion(t *testing.T) {
	f := newFixture(t)
	f.seed()
	k := VersionKey{"greeter", "1.0.0"}
	f.must(&DeclareVersion{Service: "other", Version: "1.0.0", Clients: ">= 1.0"})
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", k)})
	f.must(&PutContainer{ID: "c2", Spec: spec("n1", k, VersionKey{"other", "1.0.0"})})

	wantErr(t, f.apply(&PurgeVersion{Service: "greeter", Version: "1.0.0"}), ErrConflict,
		`version 1.0.0 of service "greeter" is active: only a retired version can be purged`)
	f.must(&RetireVersion{Service: "greeter", Version: "1.0.0", Now: t0})
	wantErr(t, f.apply(&PurgeVersion{Service: "greeter", Version: "1.0.0"}), ErrConflict, "is draining")
	v := f.st.Version(k)
	f.must(&MarkRetired{Versions: []RetireDue{{Service: "greeter", Version: "1.0.0", ModifyIndex: v.ModifyIndex}}, Now: t0})
	wantErr(t, f.apply(&PurgeVersion{Service: "greeter", Version: "1.0.0"}), ErrConflict,
		`is held by containers c1, c2: delete them first`)

	// A deleted container still holds the version until it leaves the table.
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: ContainerStatus{State: api.ContainerRunning, UpdatedAt: t0}})
	f.must(&DeleteContainer{ID: "c1"})
	f.must(&DeleteContainer{ID: "c2"}) // never reported: leaves at once
	wantErr(t, f.apply(&PurgeVersion{Service: "greeter", Version: "1.0.0"}), ErrConflict, `is held by container c1: delete it first`)
	f.must(&SetContainerStatus{ID: "c1", Node: "n1", Status: ContainerStatus{State: api.ContainerStopped, UpdatedAt: t0}})

	before := f.st.Counts()["versions"]
	_, ws := f.st.Watch(TableServices)
	r := f.must(&PurgeVersion{Service: "greeter", Version: "1.0.0"})
	if got := r.Value.(*ServiceVersion); got.Version != "1.0.0" || got.State != api.VersionRetired {
		t.Errorf("purged = %+v, want the record as it was", got)
	}
	select {
	case <-ws[0]:
	default:
		t.Error("purge did not wake the watchers of services")
	}
	if f.st.Version(k) != nil || f.st.Counts()["versions"] != before-1 || f.st.Index(TableServices) != r.Index {
		t.Errorf("version still there, or counts/index not updated: %v, index %d", f.st.Counts(), f.st.Index(TableServices))
	}
	_, vs, _ := f.st.Versions("greeter")
	if len(vs) != 1 || vs[0].Version != "2.0.0" {
		t.Errorf("versions after purge = %v", vs)
	}
	wantErr(t, f.apply(&PurgeVersion{Service: "greeter", Version: "1.0.0"}), ErrNotFound, `version 1.0.0 of service "greeter"`)

	// A container can no longer name it; declaring it again starts afresh.
	wantErr(t, f.apply(&PutContainer{ID: "c3", Spec: spec("n1", k)}), ErrInvalid, "is not declared")
	r = f.must(&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0"})
	if got := r.Value.(*ServiceVersion); got.CreateIndex != r.Index || got.State != api.VersionActive {
		t.Errorf("declared again = %+v", got)
	}
}

func TestPurgeService(t *testing.T) {
	f := newFixture(t)
	f.seed()
	f.must(&DeclareVersion{Service: "other", Version: "1.0.0", Clients: ">= 1.0"})
	f.must(&PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0.0"})})
	f.retire("greeter", "1.0.0")

	wantErr(t, f.apply(&PurgeService{Service: "greeter"}), ErrConflict,
		`service "greeter" cannot be purged: version 1.0.0 is held by container c1: delete it first, and purge once it has left the table; `+
			`version 2.0.0 is active: only a retired version can be purged`)
	f.must(&DeleteContainer{ID: "c1"})
	f.retire("greeter", "2.0.0")
	if _, vs, _ := f.st.Versions("greeter"); len(vs) != 2 {
		t.Fatalf("a refused purge changed the table: %v", vs)
	}

	r := f.must(&PurgeService{Service: "greeter"})
	got := r.Value.([]*ServiceVersion)
	if len(got) != 2 || got[0].Version != "1.0.0" || got[1].Version != "2.0.0" {
		t.Errorf("purged = %v", got)
	}
	if _, vs, _ := f.st.Versions(""); len(vs) != 1 || vs[0].Service != "other" {
		t.Errorf("versions after purge = %v", vs)
	}
	if c := f.st.Counts(); c["services"] != 1 || c["versions"] != 1 {
		t.Errorf("counts = %v", c)
	}
	wantErr(t, f.apply(&PurgeService{Service: "greeter"}), ErrNotFound, `service "greeter"`)

	// The snapshot no longer holds it either.
	var buf bytes.Buffer
	if err := f.st.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `"greeter"`) {
		t.Errorf("snapshot still names greeter: %s", buf.String())
	}
}

// The purge commands take the next type numbers; a number once used never
// changes meaning.
func TestPurgeCommandTypes(t *testing.T) {
	for _, c := range []Command{&PurgeVersion{Service: "s", Version: "1.0.0"}, &PurgeService{Service: "s"}} {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil || got.Type() != c.Type() {
			t.Fatalf("%T: decoded %T, %v", c, got, err)
		}
	}
	if PurgeVersionType != 14 || PurgeServiceType != 15 {
		t.Errorf("types %d, %d; want 14, 15", PurgeVersionType, PurgeServiceType)
	}
}
