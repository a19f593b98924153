package raftregistry

import (
	"sync"

	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// fleetCensus is the leader's census (docs/design.md §5) behind a lock, with
// a channel closed whenever a report arrives.
type fleetCensus struct {
	mu      sync.Mutex
	fleet   *census.Fleet // nil while this server does not lead
	changed chan struct{}
}

// resetCensus starts an empty, incomplete census: called when this server
// gains leadership. It expects a report from every member.
func (s *Store) resetCensus() {
	var ids []string
	if peers, err := s.Peers(); err == nil {
		for _, p := range peers {
			ids = append(ids, p.ID)
		}
	}
	s.census.mu.Lock()
	s.census.fleet = census.NewFleet(s.now(), ids, s.cfg.CensusTTL)
	s.census.notifyLocked()
	s.census.mu.Unlock()
}

// dropCensus forgets the census when leadership is lost.
func (s *Store) dropCensus() {
	s.census.mu.Lock()
	s.census.fleet = nil
	s.census.notifyLocked()
	s.census.mu.Unlock()
}

func (c *fleetCensus) notifyLocked() {
	if c.changed != nil {
		close(c.changed)
	}
	c.changed = make(chan struct{})
}

// ServerID is this server's Raft id.
func (s *Store) ServerID() string { return s.cfg.NodeID }

// CensusReport takes server's census of its watchers (leader only).
func (s *Store) CensusReport(server string, entries []census.Entry) error {
	s.census.mu.Lock()
	defer s.census.mu.Unlock()
	if s.census.fleet == nil {
		return ErrNotLeader
	}
	s.census.fleet.Report(server, entries, s.now())
	s.census.notifyLocked()
	return nil
}

// tableIndexes are the current indexes of the tables routing reads.
func tableIndexes(st *state.Store) map[string]uint64 {
	return map[string]uint64{
		census.TableServices:   st.Index(state.TableServices),
		census.TableContainers: st.Index(state.TableContainers),
		census.TableNodes:      st.Index(state.TableNodes),
	}
}

// CensusView is the leader's census at one moment.
type CensusView struct {
	Complete bool
	// Missing are the servers that have not reported yet.
	Missing  []string
	Watchers []census.Watcher
	// Changed is closed when the census next changes.
	Changed <-chan struct{}
}

// Census is the live watchers of the fleet (leader only).
func (s *Store) Census() (CensusView, error) {
	tables := tableIndexes(s.st)
	now := s.now()
	s.census.mu.Lock()
	defer s.census.mu.Unlock()
	f := s.census.fleet
	if f == nil {
		return CensusView{}, ErrNotLeader
	}
	return CensusView{Complete: f.Complete(now), Missing: f.Missing(), Watchers: f.Watchers(now, tables), Changed: s.census.changed}, nil
}

// InForce reports whether the change at index is in force (leader only):
// the census is complete and every live watcher of the given tables (all
// that routing reads when none is given) has acknowledged it. changed is closed when the census next changes; the
// tables' own watch sets say when the state does.
func (s *Store) InForce(index uint64, only ...string) (ok, complete bool, lagging []census.Lagging, changed <-chan struct{}, err error) {
	tables := census.Only(tableIndexes(s.st), only...)
	now := s.now()
	s.census.mu.Lock()
	defer s.census.mu.Unlock()
	f := s.census.fleet
	if f == nil {
		return false, false, nil, nil, ErrNotLeader
	}
	ok, lagging = f.InForce(index, tables, now)
	return ok, f.Complete(now), lagging, s.census.changed, nil
}

// observeTables records the tables' indexes for the lag times.
func (s *Store) observeTables() {
	tables := tableIndexes(s.st)
	now := s.now()
	s.census.mu.Lock()
	defer s.census.mu.Unlock()
	if f := s.census.fleet; f != nil {
		for t, idx := range tables {
			f.Observe(t, idx, now)
		}
	}
}

// censusChanged is the channel closed when the census next changes.
func (s *Store) censusChanged() <-chan struct{} {
	s.census.mu.Lock()
	defer s.census.mu.Unlock()
	if s.census.changed == nil {
		s.census.changed = make(chan struct{})
	}
	return s.census.changed
}
