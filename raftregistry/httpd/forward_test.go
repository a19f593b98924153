package httpd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// cluster is a leader and a follower, each a Server over its own fake store
// (nothing replicates between them), with the requests the leader received.
type cluster struct {
	leader, follower *testEnv

	mu   sync.Mutex
	seen []*http.Request // at the leader
}

func (c *cluster) leaderSaw() []*http.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*http.Request(nil), c.seen...)
}

// newCluster starts a leader whose every request is recorded, and a follower
// that knows it as the leader at its URL (or host:port when hostPort).
func newCluster(t *testing.T, tlsLeader bool, followerTLS func(leader *httptest.Server) *tls.Config) *cluster {
	t.Helper()
	c := &cluster{}
	lf := newFakeStore()
	seed(t, lf)
	lsrv, err := New(Config{Store: lf, ManagementToken: mgmtSecret})
	if err != nil {
		t.Fatal(err)
	}
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.seen = append(c.seen, r.Clone(context.Background()))
		c.mu.Unlock()
		lsrv.ServeHTTP(w, r)
	})
	var lhs *httptest.Server
	if tlsLeader {
		lhs = httptest.NewTLSServer(record)
	} else {
		lhs = httptest.NewServer(record)
	}
	t.Cleanup(lhs.Close)
	c.leader = &testEnv{t: t, fake: lf, srv: lsrv, hs: lhs}
	lf.leaderInfo.Store(&api.Leader{ID: "s1", RaftAddr: "127.0.0.1:7701", HTTPAddr: lhs.URL})

	ff := newFakeStore()
	seed(t, ff)
	ff.leader.Store(false)
	ff.lastContact = 1500 * time.Millisecond
	ff.leaderInfo.Store(&api.Leader{ID: "s1", RaftAddr: "127.0.0.1:7701", HTTPAddr: lhs.URL})
	var opts []func(*Config)
	if followerTLS != nil {
		ff.leaderInfo.Store(&api.Leader{ID: "s1", HTTPAddr: lhs.Listener.Addr().String()})
		opts = append(opts, func(cfg *Config) { cfg.TLSConfig = followerTLS(lhs) })
	}
	c.follower = startEnv(t, ff, opts...)
	return c
}

func TestForwardWrite(t *testing.T) {
	c := newCluster(t, false, nil)
	r := c.follower.do("PUT", "/v1/services/payments/versions/1.0.0", opSecret, `{"clients":">= 1.0"}`)
	if r.code != http.StatusOK {
		t.Fatalf("write via follower = %d %s", r.code, r.body)
	}
	if c.leader.fake.st.Version(state.VersionKey{Service: "payments", Version: "1.0.0"}) == nil {
		t.Error("the leader did not apply the write")
	}
	if c.follower.fake.applies() != 0 {
		t.Error("the follower proposed the write itself")
	}
	seen := c.leaderSaw()
	if len(seen) != 1 {
		t.Fatalf("leader saw %d requests", len(seen))
	}
	if got := seen[0].Header.Get("Authorization"); got != "Bearer "+opSecret {
		t.Errorf("forwarded Authorization = %q", got)
	}
	if got := seen[0].Header.Get(HeaderForwarded); got != "1" {
		t.Errorf("forwarded %s = %q", HeaderForwarded, got)
	}
	wantIndex(t, r, c.leader.fake.st.Index(state.TableServices))
}

func TestForwardReads(t *testing.T) {
	c := newCluster(t, false, nil)
	// Only the leader has n3: an answer naming it came from the leader.
	c.leader.fake.applyNow(t, &state.RegisterNode{ID: "n3", Gateway: "10.0.0.3:8080"})

	r := c.follower.do("GET", "/v1/nodes/n3", readSecret, "")
	if r.code != http.StatusOK || r.header.Get(api.HeaderKnownLeader) != "true" || r.header.Get(api.HeaderLastContact) != "0" {
		t.Errorf("default read = %d %v %s", r.code, r.header, r.body)
	}
	r = c.follower.do("GET", "/v1/nodes/n3?consistent", readSecret, "")
	if r.code != http.StatusOK {
		t.Errorf("consistent read = %d %s", r.code, r.body)
	}
	if c.follower.fake.verifies.Load() != 0 || c.leader.fake.verifies.Load() != 1 {
		t.Errorf("VerifyLeader calls: follower %d, leader %d", c.follower.fake.verifies.Load(), c.leader.fake.verifies.Load())
	}
	before := len(c.leaderSaw())

	// ?stale is answered by the follower from its own replica.
	r = c.follower.do("GET", "/v1/nodes/n3?stale", readSecret, "")
	if r.code != http.StatusNotFound {
		t.Errorf("stale read of n3 = %d %s", r.code, r.body)
	}
	r = c.follower.do("GET", "/v1/nodes?stale", readSecret, "")
	if r.code != http.StatusOK || r.header.Get(api.HeaderKnownLeader) != "true" || r.header.Get(api.HeaderLastContact) != "1500" {
		t.Errorf("stale read = %d %v", r.code, r.header)
	}
	wantIndex(t, r, c.follower.fake.st.Index(state.TableNodes))
	c.follower.fake.leaderInfo.Store(nil)
	r = c.follower.do("GET", "/v1/nodes?stale", readSecret, "")
	if r.code != http.StatusOK || r.header.Get(api.HeaderKnownLeader) != "false" {
		t.Errorf("stale read without leader = %d %v", r.code, r.header)
	}
	// So are its own metrics and the status endpoints.
	r = c.follower.do("GET", "/v1/metrics", readSecret, "")
	if !strings.Contains(r.body, "coexist_raft_is_leader 0") {
		t.Errorf("follower metrics: %s", r.body)
	}
	if r := c.follower.do("GET", "/v1/status/peers", "", ""); r.code != http.StatusOK {
		t.Errorf("peers = %d", r.code)
	}
	if n := len(c.leaderSaw()); n != before {
		t.Errorf("%d local requests reached the leader", n-before)
	}
}

func TestForwardAuth(t *testing.T) {
	c := newCluster(t, false, nil)
	// No token at all is refused at once.
	if r := c.follower.do("GET", "/v1/nodes", "", ""); r.code != http.StatusUnauthorized {
		t.Errorf("no token = %d", r.code)
	}
	if n := len(c.leaderSaw()); n != 0 {
		t.Errorf("leader saw %d requests without a token", n)
	}
	// A token only the leader knows (created a moment ago) works through the
	// follower; one it does not know is refused by the leader.
	c.leader.fake.applyNow(t, &state.CreateToken{AccessorID: "fresh", SecretHash: hashOf("fresh-secret"), Role: api.RoleRead})
	if r := c.follower.do("GET", "/v1/nodes", "fresh-secret", ""); r.code != http.StatusOK {
		t.Errorf("fresh token via follower = %d %s", r.code, r.body)
	}
	if r := c.follower.do("GET", "/v1/nodes", "wrong", ""); r.code != http.StatusUnauthorized {
		t.Errorf("unknown token via follower = %d %s", r.code, r.body)
	}
}

func TestForwardLoopGuard(t *testing.T) {
	c := newCluster(t, false, nil)
	hdr := http.Header{HeaderForwarded: {"1"}}
	r := doURL(t, c.follower.hs.Client(), "GET", c.follower.hs.URL+"/v1/nodes", readSecret, "", hdr)
	if r.code != http.StatusServiceUnavailable ||
		r.errorMessage(t) != "not the leader, and the request was already forwarded once: leadership is changing; retry" {
		t.Errorf("forwarded twice = %d %s", r.code, r.body)
	}
	if n := len(c.leaderSaw()); n != 0 {
		t.Errorf("leader saw %d requests", n)
	}

	// A follower that takes itself for the leader's address: one hop, then 503.
	c.follower.fake.leaderInfo.Store(&api.Leader{ID: "s2", HTTPAddr: c.follower.hs.URL})
	r = c.follower.do("PUT", "/v1/nodes/n1/heartbeat", agent1Secret, "")
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.errorMessage(t), "already forwarded once") {
		t.Errorf("self-forward = %d %s", r.code, r.body)
	}
}

func TestForwardNoLeader(t *testing.T) {
	c := newCluster(t, false, nil)
	const msg = "no leader known (or its HTTP address is not recorded yet): the cluster may be electing one; retry"
	c.follower.fake.leaderInfo.Store(nil)
	if r := c.follower.do("GET", "/v1/nodes", readSecret, ""); r.code != 503 || r.errorMessage(t) != msg {
		t.Errorf("no leader = %d %s", r.code, r.body)
	}
	if r := c.follower.do("GET", "/v1/status/leader", "", ""); r.code != 503 || r.header.Get(api.HeaderKnownLeader) != "false" {
		t.Errorf("status/leader = %d %v", r.code, r.header)
	}
	c.follower.fake.leaderInfo.Store(&api.Leader{ID: "s1"})
	if r := c.follower.do("GET", "/v1/nodes", readSecret, ""); r.code != 503 || r.errorMessage(t) != msg {
		t.Errorf("leader without address = %d %s", r.code, r.body)
	}
	c.leader.hs.Close()
	c.follower.fake.leaderInfo.Store(&api.Leader{ID: "s1", HTTPAddr: c.leader.hs.URL})
	r := c.follower.do("GET", "/v1/nodes", readSecret, "")
	if r.code != 503 || !strings.HasPrefix(r.errorMessage(t), "forward to the leader at ") {
		t.Errorf("leader down = %d %s", r.code, r.body)
	}
}

func TestForwardBlockingQuery(t *testing.T) {
	c := newCluster(t, false, nil)
	waiting, _ := c.leader.waiting()
	idx := c.leader.fake.st.Index(state.TableNodes)
	done := c.follower.async("GET", "/v1/nodes?index="+u(idx)+"&wait=1m", readSecret, "")
	await(t, "the leader to wait", waiting)
	res := c.leader.fake.applyNow(t, &state.RegisterNode{ID: "n3", Gateway: "10.0.0.3:8080"})
	r := await(t, "the answer", done)
	if r.code != http.StatusOK || !strings.Contains(r.body, `"id":"n3"`) {
		t.Fatalf("answer = %d %s", r.code, r.body)
	}
	wantIndex(t, r, res.Index)
}

// TestLostLeadership: a server that still believed it led gets ErrNotLeader.
// A read goes on to the leader; a write is answered 503, since the command
// may have been applied before leadership was lost.
func TestLostLeadership(t *testing.T) {
	c := newCluster(t, false, nil)
	stale := c.follower.fake
	stale.leader.Store(true)
	stale.applyFn = func(context.Context, state.Command) (state.Result, error) {
		return state.Result{}, fmt.Errorf("%w: leadership lost while committing log", raftregistry.ErrNotLeader)
	}
	stale.verifyFn = func(context.Context) error { return raftregistry.ErrNotLeader }

	c.leader.fake.applyNow(t, &state.RegisterNode{ID: "n3", Gateway: "10.0.0.3:8080"})
	r := c.follower.do("GET", "/v1/nodes/n3?consistent", readSecret, "")
	if r.code != http.StatusOK {
		t.Fatalf("consistent read = %d %s", r.code, r.body)
	}
	if len(c.leaderSaw()) != 1 {
		t.Errorf("leader saw %d requests, want 1", len(c.leaderSaw()))
	}

	r = c.follower.do("PUT", "/v1/services/payments/versions/1.0.0", opSecret, `{"clients":">= 1.0"}`)
	if r.code != http.StatusServiceUnavailable || r.errorMessage(t) != "not the leader: leadership lost while committing log" {
		t.Fatalf("write = %d %s", r.code, r.body)
	}
	if len(c.leaderSaw()) != 1 {
		t.Error("the write was sent to the leader again")
	}
}

func TestConsistentRead(t *testing.T) {
	e := newEnv(t)
	if r := e.do("GET", "/v1/nodes?consistent", readSecret, ""); r.code != 200 || e.fake.verifies.Load() != 1 {
		t.Errorf("consistent = %d, %d verifies", r.code, e.fake.verifies.Load())
	}
	if r := e.do("GET", "/v1/nodes", readSecret, ""); r.code != 200 || e.fake.verifies.Load() != 1 {
		t.Errorf("default read verified leadership")
	}
	e.fake.verifyFn = func(context.Context) error { return raftregistry.ErrNoLeader }
	if r := e.do("GET", "/v1/nodes?consistent", readSecret, ""); r.code != 503 || r.errorMessage(t) != "no leader known" {
		t.Errorf("consistent without quorum = %d %s", r.code, r.body)
	}
}

func TestForwardTLS(t *testing.T) {
	for name, cfg := range map[string]func(*httptest.Server) *tls.Config{
		"RootCAs": func(l *httptest.Server) *tls.Config {
			pool := x509.NewCertPool()
			pool.AddCert(l.Certificate())
			return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		},
		"ClientCAs": func(l *httptest.Server) *tls.Config {
			pool := x509.NewCertPool()
			pool.AddCert(l.Certificate())
			return &tls.Config{ClientCAs: pool, MinVersion: tls.VersionTLS12}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := newCluster(t, true, cfg)
			r := c.follower.do("GET", "/v1/nodes", readSecret, "")
			if r.code != http.StatusOK {
				t.Fatalf("read via follower = %d %s", r.code, r.body)
			}
			seen := c.leaderSaw()
			if len(seen) != 1 || seen[0].TLS == nil {
				t.Errorf("leader saw %d requests, TLS %v", len(seen), len(seen) == 1 && seen[0].TLS != nil)
			}
		})
	}
}

func TestLeaderURL(t *testing.T) {
	plain, tlsSrv := &Server{scheme: "http"}, &Server{scheme: "https"}
	for _, tc := range []struct {
		s        *Server
		addr     string
		want     string
		wantFail bool
	}{
		{plain, "127.0.0.1:7700", "http://127.0.0.1:7700", false},
		{plain, "http://10.0.0.1:7700", "http://10.0.0.1:7700", false},
		{tlsSrv, "10.0.0.1:7700", "https://10.0.0.1:7700", false},
		// A TLS server never sends a token in the clear.
		{tlsSrv, "http://10.0.0.1:7700", "https://10.0.0.1:7700", false},
		{plain, "http://", "", true},
	} {
		u, err := tc.s.leaderURL(tc.addr)
		if (err != nil) != tc.wantFail {
			t.Errorf("leaderURL(%q) error %v", tc.addr, err)
			continue
		}
		if err == nil && u.String() != tc.want {
			t.Errorf("leaderURL(%q) = %s, want %s", tc.addr, u, tc.want)
		}
	}
}

// TestStaleReadWhileCatchingUp: a follower still replaying its log after a
// restart does not answer ?stale from its own (empty or old) state; it asks
// the leader.
func TestStaleReadWhileCatchingUp(t *testing.T) {
	c := newCluster(t, false, nil)
	c.leader.fake.applyNow(t, &state.RegisterNode{ID: "n3", Gateway: "10.0.0.3:8080"})
	c.follower.fake.catchingUp.Store(true)
	r := c.follower.do("GET", "/v1/nodes/n3?stale", readSecret, "")
	if r.code != http.StatusOK {
		t.Fatalf("stale read while catching up = %d %s", r.code, r.body)
	}
	if len(c.leaderSaw()) != 1 {
		t.Fatal("the read was not forwarded to the leader")
	}
	c.follower.fake.catchingUp.Store(false)
	r = c.follower.do("GET", "/v1/nodes/n3?stale", readSecret, "")
	if r.code != http.StatusNotFound {
		t.Fatalf("stale read once caught up = %d, want the follower's own 404", r.code)
	}
}
