package raftregistry

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// testCluster is a cluster of Stores on raft's in-memory transport.
type testCluster struct {
	t      *testing.T
	stores []*Store
	trans  []*raft.InmemTransport
}

func fastRaft() *raft.Config {
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = 50 * time.Millisecond
	c.ElectionTimeout = 50 * time.Millisecond
	c.LeaderLeaseTimeout = 50 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	return c
}

func newTestCluster(t *testing.T, n int, mutate func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t}
	for i := range n {
		addr, tr := raft.NewInmemTransport("")
		_ = addr
		tc.trans = append(tc.trans, tr)
		cfg := DefaultConfig()
		cfg.NodeID = fmt.Sprintf("s%d", i+1)
		cfg.HTTPAddr = fmt.Sprintf("http://s%d", i+1)
		cfg.Bootstrap = i == 0
		cfg.Raft = fastRaft()
		cfg.Transport = tr
		cfg.LogStore = raft.NewInmemStore()
		cfg.StableStore = raft.NewInmemStore()
		cfg.SnapshotStore = raft.NewInmemSnapshotStore()
		cfg.RetireInterval = 20 * time.Millisecond
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: hclog.DefaultOutput})
		if mutate != nil {
			mutate(cfg)
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		tc.stores = append(tc.stores, s)
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	for i, a := range tc.trans {
		for j, b := range tc.trans {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	leader := tc.leader()
	for _, s := range tc.stores[1:] {
		err := leader.Join(context.Background(), api.JoinRequest{ID: s.cfg.NodeID,
			RaftAddr: string(s.cfg.Transport.LocalAddr()), HTTPAddr: s.cfg.HTTPAddr})
		if err != nil {
			t.Fatalf("join %s: %v", s.cfg.NodeID, err)
		}
	}
	return tc
}

func (tc *testCluster) leader() *Store {
	tc.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, s := range tc.stores {
			if s.IsLeader() {
				return s
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	tc.t.Fatal("no leader elected")
	return nil
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func mustApply(t *testing.T, s *Store, cmd state.Command) state.Result {
	t.Helper()
	r, err := s.Apply(context.Background(), cmd)
	if err != nil {
		t.Fatalf("apply %T: %v", cmd, err)
	}
	if r.Err != nil {
		t.Fatalf("apply %T rejected: %v", cmd, r.Err)
	}
	return r
}

func TestClusterReplicatesAndFollowersRefuseWrites(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l := tc.leader()
	r := mustApply(t, l, &state.DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0"})
	for _, s := range tc.stores {
		eventually(t, "replication to "+s.cfg.NodeID, func() bool {
			return s.State().Version(state.VersionKey{Service: "greeter", Version: "1.0.0"}) != nil &&
				s.State().LastIndex() >= r.Index
		})
		if s != l {
			if _, err := s.Apply(context.Background(), &state.PurgeNode{ID: "x"}); !errors.Is(err, ErrNotLeader) {
				t.Fatalf("follower apply: %v", err)
			}
		}
	}
	peers, err := l.Peers()
	if err != nil || len(peers) != 3 {
		t.Fatalf("peers = %v, %v", peers, err)
	}
	for _, p := range peers {
		if p.HTTPAddr == "" {
			t.Fatalf("peer %s has no http address", p.ID)
		}
	}
	ld, ok := tc.stores[1].Leader()
	if !ok || ld.ID != string(l.cfg.NodeID) || ld.HTTPAddr == "" {
		t.Fatalf("leader seen from a follower = %+v %v", ld, ok)
	}
	// Joining again is a no-op.
	s2 := tc.stores[1]
	if err := l.Join(context.Background(), api.JoinRequest{ID: s2.cfg.NodeID, RaftAddr: string(s2.cfg.Transport.LocalAddr()), HTTPAddr: s2.cfg.HTTPAddr}); err != nil {
		t.Fatal(err)
	}
	if peers, _ := l.Peers(); len(peers) != 3 {
		t.Fatalf("peers after rejoin = %v", peers)
	}
}

func TestLeaderShutdownTransfersLeadership(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l := tc.leader()
	mustApply(t, l, &state.DeclareVersion{Service: "a", Version: "1.0.0", Clients: ">= 0"})
	if err := l.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var next *Store
	eventually(t, "a new leader", func() bool {
		for _, s := range tc.stores {
			if s != l && s.IsLeader() {
				next = s
				return true
			}
		}
		return false
	})
	mustApply(t, next, &state.DeclareVersion{Service: "a", Version: "2.0.0", Clients: ">= 0"})
}

func TestHeartbeatTTLMarksNodesDownAndUp(t *testing.T) {
	tc := newTestCluster(t, 1, func(c *Config) { c.HeartbeatTTL = 100 * time.Millisecond })
	l := tc.leader()
	mustApply(t, l, &state.RegisterNode{ID: "n1", Gateway: "g"})
	nodeStatus := func() string { _, n, _ := l.State().Node("n1"); return n.Status }
	eventually(t, "node down after its TTL", func() bool { return nodeStatus() == api.NodeDown })
	if err := l.Heartbeat("n1"); err != nil {
		t.Fatal(err)
	}
	if nodeStatus() != api.NodeReady {
		t.Fatal("heartbeat did not mark the node ready")
	}
	if err := l.Heartbeat("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown node heartbeat: %v", err)
	}
}

func TestLeaderRetiresDrainedVersions(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	l := tc.leader()
	reportEmpty(t, tc)
	mustApply(t, l, &state.RegisterNode{ID: "n1", Gateway: "g"})
	mustApply(t, l, &state.DeclareVersion{Service: "a", Version: "1.0.0", Clients: ">= 0"})
	mustApply(t, l, &state.DeclareVersion{Service: "b", Version: "1.0.0", Clients: ">= 0"})
	spec := state.ContainerSpec{Node: "n1", Services: []state.VersionKey{{Service: "b", Version: "1.0.0"}},
		Driver: "exec", Command: "x", DrainTimeout: time.Hour}
	mustApply(t, l, &state.PutContainer{ID: "c1", Spec: spec})
	mustApply(t, l, &state.SetContainerStatus{ID: "c1", Status: state.ContainerStatus{State: api.ContainerRunning,
		Services: []state.ServiceStatus{{Service: "b", Version: "1.0.0", State: api.ServiceServing, Inflight: 1}}}})
	// No container: retired at once.
	mustApply(t, l, &state.RetireVersion{Service: "a", Version: "1.0.0", Now: time.Now()})
	ver := func(s string) string { return l.State().Version(state.VersionKey{Service: s, Version: "1.0.0"}).State }
	eventually(t, "a retired", func() bool { return ver("a") == api.VersionRetired })
	// Held by a serving container: stays draining until reported drained.
	mustApply(t, l, &state.RetireVersion{Service: "b", Version: "1.0.0", Now: time.Now()})
	time.Sleep(100 * time.Millisecond)
	if ver("b") != api.VersionDraining {
		t.Fatalf("b = %s before its container drained", ver("b"))
	}
	mustApply(t, l, &state.SetContainerStatus{ID: "c1", Status: state.ContainerStatus{State: api.ContainerRunning,
		Services: []state.ServiceStatus{{Service: "b", Version: "1.0.0", State: api.ServiceDrained}}}})
	eventually(t, "b retired", func() bool { return ver("b") == api.VersionRetired })
}

func TestSnapshotRestoreAcrossCluster(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l := tc.leader()
	mustApply(t, l, &state.DeclareVersion{Service: "keep", Version: "1.0.0", Clients: ">= 0"})
	rc, err := l.Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, l, &state.DeclareVersion{Service: "gone", Version: "1.0.0", Clients: ">= 0"})
	if err := l.Restore(context.Background(), rc); err != nil {
		t.Fatal(err)
	}
	for _, s := range tc.stores {
		eventually(t, "restore on "+s.cfg.NodeID, func() bool {
			return s.State().Version(state.VersionKey{Service: "gone", Version: "1.0.0"}) == nil &&
				s.State().Version(state.VersionKey{Service: "keep", Version: "1.0.0"}) != nil
		})
	}
	// The cluster keeps taking writes after a restore.
	mustApply(t, l, &state.DeclareVersion{Service: "after", Version: "1.0.0", Clients: ">= 0"})
}

func TestRemoveServer(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	l := tc.leader()
	var victim *Store
	for _, s := range tc.stores {
		if s != l {
			victim = s
			break
		}
	}
	if err := l.RemoveServer(context.Background(), victim.cfg.NodeID); err != nil {
		t.Fatal(err)
	}
	peers, _ := l.Peers()
	if len(peers) != 2 {
		t.Fatalf("peers = %v", peers)
	}
	if _, ok := l.State().Servers()[victim.cfg.NodeID]; ok {
		t.Fatal("removed server's http address kept")
	}
	if err := l.RemoveServer(context.Background(), "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
}
