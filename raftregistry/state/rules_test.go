package state

import (
	"errors"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// The HTTP API takes only canonical versions and satisfiable ranges
// (ValidateDeclareVersion, ValidateContainer), but the apply of a logged
// command keeps the rules every release had: a server replaying entries
// written before the rules tightened must reach the same state.
func TestApplyKeepsLegacyLogEntries(t *testing.T) {
	f := newFixture(t)
	f.must(&RegisterNode{ID: "n1", Gateway: "g"})
	legacy := []*DeclareVersion{
		{Service: "greeter", Version: "1.0", Clients: ">= 1.0"},
		{Service: "greeter", Version: "v1.0.0", Clients: ">= 1.0"},
		{Service: "greeter", Version: "2.0.0", Clients: ">= 2.0, < 1.0"},
	}
	for _, c := range legacy {
		if err := ValidateDeclareVersion(c); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidateDeclareVersion(%+v) = %v, want the wire rules to refuse it", c, err)
		}
		f.must(c)
	}
	ct := &PutContainer{ID: "c1", Spec: spec("n1", VersionKey{"greeter", "1.0"})}
	if err := ValidateContainer(ct.ID, &ct.Spec); !errors.Is(err, ErrInvalid) {
		t.Errorf("ValidateContainer with version 1.0 = %v, want refused", err)
	}
	f.must(ct)
	if _, vs, _ := f.st.Versions("greeter"); len(vs) != 3 {
		t.Fatalf("%d versions stored, want 3", len(vs))
	}
	// What no release accepted is still refused on apply.
	if r := f.apply(&DeclareVersion{Service: "greeter", Version: "one", Clients: ">= 1.0"}); !errors.Is(r.Err, ErrInvalid) {
		t.Errorf("version one: err = %v", r.Err)
	}
	if r := f.apply(&DeclareVersion{Service: "greeter", Version: "3.0.0", Clients: ">= x"}); !errors.Is(r.Err, ErrInvalid) {
		t.Errorf("range >= x: err = %v", r.Err)
	}
}

func TestValidateUsesWireRules(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ValidateVersion("version", "v1.0"), `version: "v1.0" is not canonical; write "1.0.0"`},
		{ValidateVersion("version", "1.0.0+b1"), `version: "1.0.0+b1" is not canonical; write "1.0.0"`},
		{ValidateConstraint("clients", ">= 2.0, < 1.0"), `clients: ">= 2.0, < 1.0" admits no version`},
		{ValidateName("service", "Web"), `service: ` + api.CheckName("Web").Error()},
	} {
		var fe *FieldError
		if !errors.As(tc.err, &fe) || tc.err.Error() != tc.want {
			t.Errorf("err = %v, want FieldError %q", tc.err, tc.want)
		}
	}
	if err := ValidateVersion("version", "1.0.0"); err != nil {
		t.Errorf("1.0.0: %v", err)
	}
}

func TestHoldUntilInForce(t *testing.T) {
	due := []RetireDue{{Service: "a", Version: "1.0.0", ModifyIndex: 5}, {Service: "b", Version: "1.0.0", ModifyIndex: 9}}
	ready, held := HoldUntilInForce(due, func(index uint64) bool { return index <= 7 })
	if len(ready) != 1 || ready[0].Service != "a" || len(held) != 1 || held[0].Service != "b" {
		t.Fatalf("ready %v, held %v: want a ready and b held", ready, held)
	}
}
