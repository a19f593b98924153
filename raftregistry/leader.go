package raftregistry

import (
	"context"
	"reflect"
	"time"

	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// watchLeadership runs the leader's duties while this server leads.
func (s *Store) watchLeadership() {
	defer s.wg.Done()
	stop := func() {}
	defer func() { stop() }()
	for {
		select {
		case <-s.shutdownCh:
			return
		case leader := <-s.raft.LeaderCh():
			stop()
			stop = func() {}
			if !leader {
				s.logger.Info("lost leadership")
				continue
			}
			s.logger.Info("gained leadership")
			stop = s.startLeaderLoop()
		}
	}
}

// startLeaderLoop runs leaderLoop until the returned function is called, which
// waits for it to end.
func (s *Store) startLeaderLoop() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.leaderLoop(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// leaderLoop establishes the leader's view, then evaluates heartbeat TTLs and
// the retire rule whenever the tables they read change, when a deadline
// passes, and at least every RetireInterval.
func (s *Store) leaderLoop(ctx context.Context) {
	// A new leader trusts no census until every server has reported
	// (docs/design.md §5).
	s.resetCensus()
	defer s.dropCensus()
	// Consistent reads wait for this barrier (VerifyLeader). The term is
	// read before it: if leadership changed in between, the barrier ran in
	// a later term, readyTerm (this older one) never matches the current
	// term, and no read is let through on its account.
	term := s.raft.CurrentTerm()
	for {
		err := s.raft.Barrier(s.cfg.ApplyTimeout).Error()
		if err == nil {
			break
		}
		s.logger.Warn("barrier after gaining leadership failed", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.readyTerm.Store(term)
	if s.cfg.HTTPAddr != "" {
		if _, err := s.Apply(ctx, &state.SetServer{ID: s.cfg.NodeID, HTTPAddr: s.cfg.HTTPAddr}); err != nil {
			s.logger.Warn("record own http address", "error", err)
		}
	}
	_, nodes, _ := s.st.Nodes()
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
	}
	s.hbMu.Lock()
	s.hb.ResetAll(ids, s.now())
	s.hbMu.Unlock()

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		_, ws := s.st.Watch(state.TableServices, state.TableContainers, state.TableNodes)
		s.observeTables()
		next, held := s.leaderTick(ctx)
		if held {
			// A retirement waits for the census: look again when it moves.
			ws = append(ws, s.censusChanged())
		}
		wait := s.cfg.RetireInterval
		if !next.IsZero() {
			wait = min(wait, max(next.Sub(s.now()), 10*time.Millisecond))
		}
		timer.Reset(wait)
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
		}
		for _, ch := range ws {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		chosen, _, _ := reflect.Select(cases)
		if chosen == 0 {
			return
		}
		if chosen != 1 && !timer.Stop() {
			<-timer.C
		}
		// Coalesce bursts of writes (agents report often) into one pass.
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// leaderTick writes the node status changes and retirements that are due and
// returns the next deadline it knows of, and whether a retirement is held
// back until its draining state is in force.
func (s *Store) leaderTick(ctx context.Context) (time.Time, bool) {
	now := s.now()
	_, nodes, _ := s.st.Nodes()
	s.hbMu.Lock()
	changes := s.hb.StatusChanges(nodes, now)
	next, _ := s.hb.NextExpiry()
	s.hbMu.Unlock()
	for i := range changes {
		c := changes[i]
		s.logger.Info("node status changes", "node", c.ID, "status", c.Status)
		if _, err := s.Apply(ctx, &c); err != nil {
			s.logger.Warn("write node status", "node", c.ID, "error", err)
		}
	}
	due, held := state.HoldUntilInForce(s.st.DueRetirements(now), s.drainingInForce)
	if len(due) > 0 {
		for _, d := range due {
			s.logger.Info("retiring version", "service", d.Service, "version", d.Version, "reason", d.Reason)
		}
		if _, err := s.Apply(ctx, &state.MarkRetired{Versions: due, Now: now.UTC()}); err != nil {
			s.logger.Warn("write retirements", "error", err)
		}
	}
	if t, ok := s.st.NextRetireDeadline(); ok && (next.IsZero() || t.Before(next)) {
		next = t
	}
	return next, len(held) > 0
}

// drainingInForce says whether the draining state a retirement waits for,
// at index of the services table, is in force.
func (s *Store) drainingInForce(index uint64) bool {
	ok, complete, lagging, _, err := s.InForce(index, census.TableServices)
	if err != nil || !ok {
		s.logger.Debug("retirement waits until draining is in force", "index", index,
			"census_complete", complete, "lagging", len(lagging))
		return false
	}
	return true
}
