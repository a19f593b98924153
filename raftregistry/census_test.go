package raftregistry

import (
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// report hands the leader server's census, retrying until the leader has
// set its census up (just after an election it has not yet).
func report(t *testing.T, l *Store, server string, entries ...census.Entry) {
	t.Helper()
	eventually(t, "census report to "+l.cfg.NodeID, func() bool { return l.CensusReport(server, entries) == nil })
}

// reportEmpty tells the leader that no server serves a watcher.
func reportEmpty(t *testing.T, tc *testCluster) {
	t.Helper()
	l := tc.leader()
	for _, s := range tc.stores {
		report(t, l, s.cfg.NodeID)
	}
}

func watcher(ack uint64) census.Entry {
	return census.Entry{Identity: census.Identity{Instance: "gw1", Kind: census.KindAgent, Name: census.AgentName, Version: "n1"},
		Table: census.TableServices, Ack: ack, Open: 1}
}

func TestRetireWaitsUntilDrainingIsInForce(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	l := tc.leader()
	mustApply(t, l, &state.DeclareVersion{Service: "a", Version: "1.0.0", Clients: ">= 0"})
	// A gateway that has seen the services table as it is now.
	report(t, l, "s1", watcher(l.State().Index(state.TableServices)))
	res := mustApply(t, l, &state.RetireVersion{Service: "a", Version: "1.0.0", Now: time.Now()})
	ver := func() string { return l.State().Version(state.VersionKey{Service: "a", Version: "1.0.0"}).State }
	// No container holds it, so it would retire at once; but the gateway
	// has not seen it draining.
	time.Sleep(300 * time.Millisecond)
	if ver() != api.VersionDraining {
		t.Fatalf("a = %s before its draining state was in force", ver())
	}
	if ok, _, lag, _, _ := l.InForce(res.Index); ok || len(lag) != 1 || lag[0].Instance != "gw1" {
		t.Fatalf("InForce(%d) = %v, lagging %+v; want gw1 lagging", res.Index, ok, lag)
	}
	report(t, l, "s1", watcher(res.Index))
	eventually(t, "a retired once the gateway acknowledged", func() bool { return ver() == api.VersionRetired })
}

func TestNewLeaderWaitsForTheCensus(t *testing.T) {
	const ttl = 2 * time.Second
	tc := newTestCluster(t, 3, func(c *Config) { c.CensusTTL = ttl })
	l := tc.leader()
	res := mustApply(t, l, &state.DeclareVersion{Service: "a", Version: "1.0.0", Clients: ">= 0"})
	var follower *Store
	for _, s := range tc.stores {
		if s != l {
			follower = s
		}
	}
	// The only watcher is served by a follower and has not seen the change.
	for _, s := range tc.stores {
		var es []census.Entry
		if s == follower {
			es = append(es, watcher(res.Index-1))
		}
		report(t, l, s.cfg.NodeID, es...)
	}
	if ok, _, _, _, _ := l.InForce(res.Index); ok {
		t.Fatal("in force while the follower's watcher lags")
	}
	// The leader goes; the new one has heard from no server.
	if err := l.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var nl *Store
	eventually(t, "a new leader", func() bool {
		for _, s := range tc.stores {
			if s != l && s.IsLeader() {
				nl = s
				return true
			}
		}
		return false
	})
	// The servers that are left report, but not the follower that serves
	// the watcher: nothing may be declared in force yet.
	for _, s := range tc.stores {
		if s != l && s != follower {
			report(t, nl, s.cfg.NodeID)
		}
	}
	ok, complete, _, _, err := nl.InForce(res.Index)
	if err != nil || ok || complete {
		t.Fatalf("new leader: InForce = %v, complete %v, err %v; want not in force, census incomplete", ok, complete, err)
	}
	report(t, nl, follower.cfg.NodeID, watcher(res.Index-1))
	// The old leader never reports: the census is complete once the ttl
	// has passed since the new leader took office.
	if _, complete, _, _, _ := nl.InForce(res.Index); complete {
		t.Fatal("census complete without the old leader's report, before the ttl")
	}
	time.Sleep(ttl)
	report(t, nl, follower.cfg.NodeID, watcher(res.Index-1))
	if ok, complete, lag, _, _ := nl.InForce(res.Index); ok || !complete || len(lag) != 1 {
		t.Fatalf("after the census is rebuilt: InForce = %v, complete %v, lagging %+v; want the watcher lagging", ok, complete, lag)
	}
	report(t, nl, follower.cfg.NodeID, watcher(res.Index))
	if ok, _, lag, _, _ := nl.InForce(res.Index); !ok {
		t.Fatalf("the watcher acknowledged: InForce = false, lagging %+v", lag)
	}
}
