package httpd

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/coexist-dev/coexist/raftregistry/state"
)

// PUT of a version takes ?cas like a container: ?cas=0 creates only, so a
// tool that means to create a version learns that one exists (with the same
// range or not) instead of silently sharing it.
func TestDeclareVersionCAS(t *testing.T) {
	e := newEnv(t)
	const body = `{"clients":">= 1.0, < 2.0"}`
	idx := strconv.FormatUint(e.fake.st.Version(state.VersionKey{Service: "orders", Version: "1.0.0"}).ModifyIndex, 10)
	r := e.do("PUT", "/v1/services/orders/versions/1.0.0?cas=0", opSecret, body)
	if r.code != http.StatusConflict {
		t.Fatalf("create only on an existing version: %d %s", r.code, r.body)
	}
	if got, want := r.errorMessage(t), `version 1.0.0 of service "orders" exists (active) at modify index `+idx+`, not 0: conflict`; got != want {
		t.Errorf("error = %q\nwant    %q", got, want)
	}
	if r := e.do("PUT", "/v1/services/orders/versions/3.0.0?cas=0", opSecret, body); r.code != http.StatusOK {
		t.Fatalf("create only on a new version: %d %s", r.code, r.body)
	}
	if r := e.do("PUT", "/v1/services/orders/versions/1.0.0?cas="+idx, opSecret, body); r.code != http.StatusOK {
		t.Fatalf("cas at the current modify index: %d %s", r.code, r.body)
	}
	before := e.fake.applies()
	r = e.do("PUT", "/v1/services/orders/versions/1.0.0?cas=soon", opSecret, body)
	if r.code != http.StatusBadRequest || r.errorMessage(t) != `cas: "soon" is not a modify index (a non-negative integer; 0 means create only)` {
		t.Fatalf("bad cas: %d %s", r.code, r.body)
	}
	if e.fake.applies() != before {
		t.Error("bad cas reached Raft")
	}
}

// A bad ?force is a 400 naming it, whether or not the write would strand
// anyone (it was ignored where no stranding check ran), and reaches no Raft.
func TestVersionWritesRefuseBadForce(t *testing.T) {
	e := newEnv(t)
	before := e.fake.applies()
	for _, req := range []struct{ method, path, body string }{
		{"PUT", "/v1/services/orders/versions/1.0.0?force=bogus", `{"clients":">= 1.0, < 2.0"}`},
		{"PUT", "/v1/services/orders/versions/7.0.0?force=bogus", `{"clients":">= 1.0"}`},
		{"DELETE", "/v1/services/orders/versions/1.0.0?force=bogus", ""},
		{"DELETE", "/v1/services/orders/versions/1.0.0?purge=true&force=x", ""},
	} {
		r := e.do(req.method, req.path, opSecret, req.body)
		if r.code != http.StatusBadRequest || r.errorMessage(t) == "" || r.errorMessage(t)[:6] != "force:" {
			t.Errorf("%s %s: %d %s; want 400 naming force", req.method, req.path, r.code, r.body)
		}
	}
	if e.fake.applies() != before {
		t.Error("a write with a bad force reached Raft")
	}
}
