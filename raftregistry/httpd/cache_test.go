package httpd

import (
	"testing"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// TestCachedListsFollowChanges reads the cached lists, changes the tables,
// and reads them again: an answer is reused only for the index it was
// encoded at.
func TestCachedListsFollowChanges(t *testing.T) {
	e := newEnv(t)
	count := func() int {
		var svcs []api.Service
		e.do("GET", "/v1/services", opSecret, "").decode(t, &svcs)
		n := 0
		for _, s := range svcs {
			n += len(s.Versions)
		}
		return n
	}
	before := count()
	if again := count(); again != before {
		t.Fatalf("second read = %d versions, first %d", again, before)
	}
	e.fake.applyNow(t, &state.DeclareVersion{Service: "orders", Version: "3.0.0", Clients: ">= 3.0"})
	if after := count(); after != before+1 {
		t.Fatalf("after a declare: %d versions, want %d", after, before+1)
	}
	var nodes []api.Node
	e.do("GET", "/v1/nodes", readSecret, "").decode(t, &nodes)
	e.fake.applyNow(t, &state.RegisterNode{ID: "n3", Gateway: "g3"})
	e.do("GET", "/v1/nodes", readSecret, "").decode(t, &nodes)
	if len(nodes) != 3 {
		t.Fatalf("nodes after a registration = %d, want 3", len(nodes))
	}
}
