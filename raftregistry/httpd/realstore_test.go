package httpd

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/hashicorp/raft"
)

// realServer is a raftregistry.Store with the API in front of it.
type realServer struct {
	store *raftregistry.Store
	hs    *httptest.Server
}

func (s *realServer) do(t *testing.T, method, path, token, body string) *response {
	t.Helper()
	return doURL(t, s.hs.Client(), method, s.hs.URL+path, token, body, nil)
}

// newRealCluster starts n real stores over an in-memory transport, each with
// a Server on its own httptest listener; the first bootstraps, the rest join.
func newRealCluster(t *testing.T, n int) []*realServer {
	t.Helper()
	var out []*realServer
	var trans []*raft.InmemTransport
	for i := range n {
		var h atomic.Pointer[Server]
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if s := h.Load(); s != nil {
				s.ServeHTTP(w, r)
				return
			}
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}))
		t.Cleanup(hs.Close)
		_, tr := raft.NewInmemTransport("")
		trans = append(trans, tr)
		rc := raft.DefaultConfig()
		rc.HeartbeatTimeout = 50 * time.Millisecond
		rc.ElectionTimeout = 50 * time.Millisecond
		rc.LeaderLeaseTimeout = 50 * time.Millisecond
		rc.CommitTimeout = 5 * time.Millisecond
		cfg := raftregistry.DefaultConfig()
		cfg.NodeID = fmt.Sprintf("s%d", i+1)
		cfg.HTTPAddr = hs.URL
		cfg.Bootstrap = i == 0
		cfg.Raft = rc
		cfg.Transport = tr
		cfg.LogStore = raft.NewInmemStore()
		cfg.StableStore = raft.NewInmemStore()
		cfg.SnapshotStore = raft.NewInmemSnapshotStore()
		st, err := raftregistry.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Shutdown() })
		srv, err := New(Config{Store: st, ManagementToken: mgmtSecret})
		if err != nil {
			t.Fatal(err)
		}
		h.Store(srv)
		out = append(out, &realServer{store: st, hs: hs})
	}
	for i, a := range trans {
		for j, b := range trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	eventually(t, "s1 to lead", out[0].store.IsLeader)
	// s1 records its own HTTP address when it wins the election; joining
	// the others goes through the API, as `server --join` does.
	for i, s := range out[1:] {
		body := mustJSON(t, api.JoinRequest{ID: fmt.Sprintf("s%d", i+2),
			RaftAddr: string(trans[i+1].LocalAddr()), HTTPAddr: s.hs.URL})
		eventually(t, "the join to be accepted", func() bool {
			return out[0].do(t, "POST", "/v1/cluster/join", mgmtSecret, body).code == http.StatusOK
		})
	}
	for _, s := range out[1:] {
		eventually(t, "the followers to know the leader's HTTP address", func() bool {
			l, ok := s.store.Leader()
			return ok && l.HTTPAddr != ""
		})
	}
	return out
}

// TestRealStore runs the API over real Raft stores: writes and reads through
// a follower, stale reads, a blocking query, tokens, heartbeats and a
// snapshot round trip.
func TestRealStore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Raft")
	}
	servers := newRealCluster(t, 2)
	leader, follower := servers[0], servers[1]

	mustOK := func(r *response, what string) *response {
		t.Helper()
		if r.code != http.StatusOK {
			t.Fatalf("%s = %d %s", what, r.code, r.body)
		}
		return r
	}
	mustOK(follower.do(t, "PUT", "/v1/nodes/n1", mgmtSecret, `{"address":"10.0.0.1","gateway":"10.0.0.1:8080"}`), "register node")
	mustOK(follower.do(t, "PUT", "/v1/services/orders/versions/1.0.0", mgmtSecret, `{"clients":">= 1.0, < 2.0"}`), "declare")

	created := mustOK(follower.do(t, "POST", "/v1/acl/tokens", mgmtSecret, `{"role":"agent","node":"n1"}`), "create token")
	var agent api.Token
	created.decode(t, &agent)
	put := mustOK(follower.do(t, "PUT", "/v1/containers/c1?cas=0", mgmtSecret,
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x","env":{"K":"secret"}}}`), "put container")
	if r := follower.do(t, "PUT", "/v1/containers/c1?cas=0", mgmtSecret,
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/y"}}`); r.code != http.StatusConflict {
		t.Errorf("second create-only put = %d %s", r.code, r.body)
	}

	// A blocking query through the follower, answered by the agent's report.
	idx := put.header.Get(api.HeaderIndex)
	done := make(chan *response, 1)
	go func() {
		r, err := send(follower.hs.Client(), "GET", follower.hs.URL+"/v1/containers?node=n1&index="+idx+"&wait=30s", agent.SecretID, "", nil)
		if err != nil {
			r = &response{body: err.Error()}
		}
		done <- r
	}()
	mustOK(follower.do(t, "PUT", "/v1/containers/c1/status", agent.SecretID,
		`{"state":"running","endpoint":"127.0.0.1:21001","services":[{"service":"orders","version":"1.0.0","state":"serving"}]}`), "report status")
	r := await(t, "the blocking query", done)
	if r.code != http.StatusOK || !strings.Contains(r.body, `"state":"running"`) || !strings.Contains(r.body, `"K":"secret"`) {
		t.Errorf("blocking query = %d %s", r.code, r.body)
	}

	route := mustOK(follower.do(t, "GET", "/v1/route?service=orders&client=web&client_version=1.2.0", agent.SecretID, ""), "route")
	if !strings.Contains(route.body, `"version":"1.0.0"`) || !strings.Contains(route.body, `"gateway":"10.0.0.1:8080"`) {
		t.Errorf("route = %s", route.body)
	}
	mustOK(follower.do(t, "PUT", "/v1/nodes/n1/heartbeat", agent.SecretID, ""), "heartbeat")

	// The follower's own replica catches up; ?stale reads it.
	eventually(t, "the follower to replicate c1", func() bool {
		r := follower.do(t, "GET", "/v1/containers/c1?stale", mgmtSecret, "")
		return r.code == http.StatusOK && strings.Contains(r.body, `"running"`)
	})
	stale := follower.do(t, "GET", "/v1/nodes?stale", mgmtSecret, "")
	if stale.header.Get(api.HeaderKnownLeader) != "true" || stale.header.Get(api.HeaderLastContact) == "" {
		t.Errorf("stale headers = %v", stale.header)
	}
	if r := follower.do(t, "GET", "/v1/status/leader", "", ""); !strings.Contains(r.body, `"id":"s1"`) {
		t.Errorf("status/leader = %s", r.body)
	}
	if r := leader.do(t, "GET", "/v1/status/peers", "", ""); strings.Count(r.body, `"id"`) != 2 {
		t.Errorf("status/peers = %s", r.body)
	}

	// Snapshot round trip: save, purge, restore.
	snap := mustOK(follower.do(t, "GET", "/v1/snapshot", mgmtSecret, ""), "save snapshot")
	mustOK(follower.do(t, "DELETE", "/v1/nodes/n1?force=true", mgmtSecret, ""), "purge")
	if r := follower.do(t, "GET", "/v1/containers/c1", mgmtSecret, ""); r.code != http.StatusNotFound {
		t.Errorf("c1 after purge = %d", r.code)
	}
	mustOK(follower.do(t, "PUT", "/v1/snapshot", mgmtSecret, snap.body), "restore snapshot")
	eventually(t, "the restore to reach the follower", func() bool {
		return follower.do(t, "GET", "/v1/containers/c1?stale", mgmtSecret, "").code == http.StatusOK
	})
	mustOK(leader.do(t, "GET", "/v1/containers/c1", agent.SecretID, ""), "c1 after restore")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := leader.store.VerifyLeader(ctx); err != nil {
		t.Errorf("verify leader: %v", err)
	}
}
