package httpd

import (
	"net/http"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// retireNow retires a version at once, as the leader would once drained.
func retireNow(t *testing.T, f *fakeStore, svc, ver string) {
	t.Helper()
	r := f.applyNow(t, &state.RetireVersion{Service: svc, Version: ver, Now: time.Now()})
	mi := r.Value.(*state.ServiceVersion).ModifyIndex
	f.applyNow(t, &state.MarkRetired{Versions: []state.RetireDue{{Service: svc, Version: ver, ModifyIndex: mi}}, Now: time.Now()})
}

func TestPurgeVersionEndpoint(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, path, secret string
		code               int
		msg                string
	}{
		{"active", "/v1/services/orders/versions/2.0.0?purge=true", opSecret, 409,
			`version 2.0.0 of service "orders" is active: only a retired version can be purged (retire it and wait until it is retired): conflict`},
		{"held by a container", "/v1/services/orders/versions/1.0.0?purge", opSecret, 409,
			`version 1.0.0 of service "orders" is held by container c1: delete it first, and purge once it has left the table: conflict`},
		{"unknown", "/v1/services/orders/versions/9.0.0?purge=true", opSecret, 404, `version 9.0.0 of service "orders": not found`},
		{"bad flag", "/v1/services/orders/versions/1.0.0?purge=yes", opSecret, 400, `purge: "yes" is not true or false (a bare ?purge is true)`},
		{"read token", "/v1/services/orders/versions/1.0.0?purge=true", readSecret, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "held by a container" {
				retireNow(t, e.fake, "orders", "1.0.0")
			}
			r := e.do("DELETE", tc.path, tc.secret, "")
			if r.code != tc.code {
				t.Fatalf("code = %d %s, want %d", r.code, r.body, tc.code)
			}
			if tc.msg != "" {
				if got := r.errorMessage(t); got != tc.msg {
					t.Errorf("error = %q\nwant    %q", got, tc.msg)
				}
			}
		})
	}

	e.fake.applyNow(t, &state.DeleteContainer{ID: "c1"}) // never reported: leaves the table
	r := e.do("DELETE", "/v1/services/orders/versions/1.0.0?purge=true", opSecret, "")
	if r.code != http.StatusOK {
		t.Fatalf("purge = %d %s", r.code, r.body)
	}
	var got api.ServiceVersion
	r.decode(t, &got)
	if got.Version != "1.0.0" || got.State != api.VersionRetired {
		t.Errorf("answer = %+v, want the retired record", got)
	}
	wantIndex(t, r, e.fake.st.LastIndex())
	r = e.do("GET", "/v1/services/orders", readSecret, "")
	var svc api.Service
	r.decode(t, &svc)
	if len(svc.Versions) != 1 || svc.Versions[0].Version != "2.0.0" {
		t.Errorf("service after purge = %+v", svc)
	}
}

func TestPurgeServiceEndpoint(t *testing.T) {
	e := newEnv(t)
	r := e.do("DELETE", "/v1/services/orders", opSecret, "")
	if r.code != http.StatusConflict {
		t.Fatalf("purge with active versions = %d %s", r.code, r.body)
	}
	want := `service "orders" cannot be purged: version 1.0.0 is active: only a retired version can be purged (retire it and wait until it is retired); ` +
		`version 2.0.0 is active: only a retired version can be purged (retire it and wait until it is retired): conflict`
	if got := r.errorMessage(t); got != want {
		t.Errorf("error = %q\nwant    %q", got, want)
	}
	e.fake.applyNow(t, &state.DeleteContainer{ID: "c1"})
	retireNow(t, e.fake, "orders", "1.0.0")
	retireNow(t, e.fake, "orders", "2.0.0")
	if r := e.do("DELETE", "/v1/services/orders", readSecret, ""); r.code != http.StatusForbidden {
		t.Errorf("read token: %d %s", r.code, r.body)
	}
	r = e.do("DELETE", "/v1/services/orders", opSecret, "")
	if r.code != http.StatusOK {
		t.Fatalf("purge = %d %s", r.code, r.body)
	}
	var got api.Service
	r.decode(t, &got)
	if got.Name != "orders" || len(got.Versions) != 2 {
		t.Errorf("answer = %+v, want the service as it was", got)
	}
	if r := e.do("GET", "/v1/services/orders", readSecret, ""); r.code != http.StatusNotFound {
		t.Errorf("service after purge: %d %s", r.code, r.body)
	}
	if r := e.do("DELETE", "/v1/services/orders", opSecret, ""); r.code != http.StatusNotFound {
		t.Errorf("purge twice: %d %s", r.code, r.body)
	}
}

// A version stored before versions had to be canonical can still be retired
// and purged by the spelling it was stored under.
func TestLegacyVersionCanBeRetiredAndPurged(t *testing.T) {
	e := newEnv(t)
	e.fake.applyNow(t, &state.DeclareVersion{Service: "orders", Version: "3.0", Clients: ">= 3.0"})
	if r := e.do("PUT", "/v1/services/orders/versions/3.0", opSecret, `{"clients":">= 3.0"}`); r.code != http.StatusBadRequest {
		t.Errorf("declare 3.0 again = %d %s, want 400", r.code, r.body)
	}
	r := e.do("DELETE", "/v1/services/orders/versions/3.0", opSecret, "")
	if r.code != http.StatusOK {
		t.Fatalf("retire 3.0 = %d %s", r.code, r.body)
	}
	v := e.fake.st.Version(state.VersionKey{Service: "orders", Version: "3.0"})
	e.fake.applyNow(t, &state.MarkRetired{Versions: []state.RetireDue{{Service: "orders", Version: "3.0", ModifyIndex: v.ModifyIndex}}, Now: time.Now()})
	if r := e.do("DELETE", "/v1/services/orders/versions/3.0?purge", opSecret, ""); r.code != http.StatusOK {
		t.Fatalf("purge 3.0 = %d %s", r.code, r.body)
	}
}
