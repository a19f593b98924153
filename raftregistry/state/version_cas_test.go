package state

import (
	"errors"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// A declaration with CAS is a check-and-set on the version's modify index:
// 0 creates only (an active, draining or retired version is a conflict), N
// writes only a version at modify index N (a rollback of the retired version
// read at N).
func TestDeclareVersionCAS(t *testing.T) {
	f := newFixture(t)
	zero := uint64(0)
	decl := func(cas *uint64) *DeclareVersion {
		return &DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0", CAS: cas}
	}
	v := f.must(decl(&zero)).Value.(*ServiceVersion)
	if v.State != api.VersionActive {
		t.Fatalf("created = %+v", v)
	}
	before := f.st.Index(TableServices)
	for _, tc := range []struct {
		name  string
		setup Command
	}{
		{"active", nil},
		{"draining", &RetireVersion{Service: "greeter", Version: "1.0.0", Now: t0}},
	} {
		if tc.setup != nil {
			f.must(tc.setup)
			before = f.st.Index(TableServices)
		}
		// The same range and description, create only: still a conflict.
		if r := f.apply(decl(&zero)); !errors.Is(r.Err, ErrConflict) {
			t.Fatalf("%s: cas=0 on an existing version: err = %v", tc.name, r.Err)
		}
		if f.st.Index(TableServices) != before {
			t.Fatalf("%s: a refused declaration was written", tc.name)
		}
	}
	cur := f.st.Version(VersionKey{"greeter", "1.0.0"})
	f.must(&MarkRetired{Versions: []RetireDue{{Service: "greeter", Version: "1.0.0", ModifyIndex: cur.ModifyIndex}}, Now: t0})
	retired := f.st.Version(VersionKey{"greeter", "1.0.0"})
	if r := f.apply(decl(&zero)); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("cas=0 on a retired version: err = %v", r.Err)
	}
	stale := retired.ModifyIndex - 1
	if r := f.apply(decl(&stale)); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("cas with a stale index: err = %v", r.Err)
	}
	// The index read: a rollback.
	idx := retired.ModifyIndex
	if v := f.must(decl(&idx)).Value.(*ServiceVersion); v.State != api.VersionActive || v.CreateIndex != 1 {
		t.Fatalf("rollback with cas = %+v", v)
	}
	// A version that does not exist, with a non-zero index.
	seven := uint64(7)
	if r := f.apply(&DeclareVersion{Service: "greeter", Version: "2.0.0", Clients: ">= 2.0", CAS: &seven}); !errors.Is(r.Err, ErrConflict) {
		t.Fatalf("cas=7 on a missing version: err = %v", r.Err)
	}
}
