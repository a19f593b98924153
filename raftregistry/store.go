package raftregistry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

// Config configures a Store.
type Config struct {
	// NodeID is this server's Raft id; unique in the cluster.
	NodeID string
	// RaftAddr is the address the Raft TCP transport binds and advertises.
	RaftAddr string
	// HTTPAddr is this server's API URL, recorded so followers can forward
	// to the leader.
	HTTPAddr string
	// DataDir holds the Raft log, stable store and snapshots.
	DataDir string
	// Bootstrap makes this server a one-server cluster when the data dir
	// holds no Raft state yet.
	Bootstrap bool
	// ApplyTimeout bounds how long a write waits for Raft.
	ApplyTimeout time.Duration
	// HeartbeatTTL is how long a node stays ready without a heartbeat.
	HeartbeatTTL time.Duration
	// RetireInterval is the longest the leader waits between two
	// evaluations of the retire rule and the heartbeat TTLs.
	RetireInterval time.Duration
	// CensusTTL is how long a watcher stays live after its last request,
	// and how long a new leader waits for every server's census before it
	// trusts the reports it has (docs/design.md §5).
	CensusTTL time.Duration
	// Raft, when set, replaces the default Raft configuration (its
	// LocalID and Logger are set by New).
	Raft *raft.Config
	// Transport, LogStore, StableStore and SnapshotStore replace the
	// on-disk defaults; tests use the in-memory ones.
	Transport     raft.Transport
	LogStore      raft.LogStore
	StableStore   raft.StableStore
	SnapshotStore raft.SnapshotStore
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger hclog.Logger
}

// DefaultConfig returns a configuration with the defaults filled in.
func DefaultConfig() *Config {
	return &Config{
		RaftAddr:       "127.0.0.1:7701",
		HTTPAddr:       "http://127.0.0.1:7700",
		ApplyTimeout:   10 * time.Second,
		HeartbeatTTL:   10 * time.Second,
		RetireInterval: time.Second,
		CensusTTL:      DefaultCensusTTL,
	}
}

// DefaultCensusTTL is the default Config.CensusTTL: longer than the backoff
// of any watcher between two requests, short enough that a crashed client
// does not hold changes back for long.
const DefaultCensusTTL = 10 * time.Second

// Store is the registry's replicated store.
type Store struct {
	cfg    Config
	logger hclog.Logger
	now    func() time.Time

	st     *state.Store
	raft   *raft.Raft
	closer []io.Closer

	hbMu sync.Mutex
	hb   *state.Heartbeats

	census fleetCensus

	// startIndex is the last index of the log this server held when it
	// started: until its state has applied that far, it is catching up.
	startIndex uint64
	caughtUp   atomic.Bool

	// readyTerm is the term in which this server, as leader, has applied
	// its first barrier: from then on its state holds every write committed
	// in earlier terms, and consistent reads may be served from it.
	readyTerm atomic.Uint64

	// inflight counts Apply and VerifyLeader calls under way; Shutdown
	// refuses new ones and waits for these before stopping Raft, whose
	// futures would otherwise never complete (hashicorp/raft#498).
	opMu     sync.Mutex
	closing  bool
	inflight sync.WaitGroup

	shutdownOnce sync.Once
	shutdownCh   chan struct{}
	wg           sync.WaitGroup
}

// New opens (or creates) the Raft state in cfg.DataDir and starts Raft.
func New(cfg *Config) (*Store, error) {
	c := *cfg
	if c.NodeID == "" {
		return nil, errors.New("node id must not be empty")
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.HeartbeatTTL == 0 {
		c.HeartbeatTTL = 10 * time.Second
	}
	if c.RetireInterval == 0 {
		c.RetireInterval = time.Second
	}
	if c.CensusTTL == 0 {
		c.CensusTTL = DefaultCensusTTL
	}
	s := &Store{
		cfg:        c,
		logger:     c.Logger.Named("store"),
		now:        c.Now,
		st:         state.New(),
		hb:         state.NewHeartbeats(c.HeartbeatTTL),
		shutdownCh: make(chan struct{}),
	}
	if err := s.open(); err != nil {
		for _, cl := range s.closer {
			_ = cl.Close()
		}
		return nil, err
	}
	s.wg.Add(1)
	go s.watchLeadership()
	return s, nil
}

func (s *Store) open() error {
	c := &s.cfg
	rc := raft.DefaultConfig()
	if c.Raft != nil {
		copied := *c.Raft
		rc = &copied
	}
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.Logger = c.Logger.Named("raft")
	rc.BatchApplyCh = true
	if c.Raft == nil {
		// Followers learn that an entry is committed from the next
		// AppendEntries; the default 50 ms makes ?stale reads (and the
		// watchers they serve) lag by 50–100 ms.
		rc.CommitTimeout = 5 * time.Millisecond
	}
	if rc.MaxAppendEntries < 256 {
		rc.MaxAppendEntries = 256
	}

	logs, stable, snaps := c.LogStore, c.StableStore, c.SnapshotStore
	if logs == nil || stable == nil || snaps == nil {
		if c.DataDir == "" {
			return errors.New("data dir must not be empty")
		}
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	if logs == nil || stable == nil {
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(c.DataDir, "raft.db")})
		if err != nil {
			return fmt.Errorf("open bolt store: %w", err)
		}
		s.closer = append(s.closer, bolt)
		if logs == nil {
			logs = bolt
		}
		if stable == nil {
			stable = bolt
		}
	}
	if snaps == nil {
		fss, err := raft.NewFileSnapshotStoreWithLogger(c.DataDir, 2, c.Logger.Named("snapshot"))
		if err != nil {
			return fmt.Errorf("open snapshot store: %w", err)
		}
		snaps = fss
	}
	trans := c.Transport
	if trans == nil {
		addr, err := net.ResolveTCPAddr("tcp", c.RaftAddr)
		if err != nil {
			return fmt.Errorf("resolve raft address %q: %w", c.RaftAddr, err)
		}
		tcp, err := raft.NewTCPTransportWithLogger(c.RaftAddr, addr, 3, 10*time.Second, c.Logger.Named("transport"))
		if err != nil {
			return fmt.Errorf("open raft transport: %w", err)
		}
		s.closer = append(s.closer, tcp)
		trans = tcp
	}

	if last, err := logs.LastIndex(); err == nil {
		s.startIndex = last
	}
	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return fmt.Errorf("check raft state: %w", err)
	}
	r, err := raft.NewRaft(rc, &fsm{st: s.st}, logs, stable, snaps, trans)
	if err != nil {
		return fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	switch {
	case existing:
		s.logger.Info("raft state found in data dir; bootstrap and join are ignored", "dir", c.DataDir)
	case c.Bootstrap:
		s.logger.Info("bootstrapping a new cluster", "id", c.NodeID, "raft_addr", trans.LocalAddr())
		f := r.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
			ID: rc.LocalID, Address: trans.LocalAddr(), Suffrage: raft.Voter,
		}}})
		if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	return nil
}

// HasExistingState reports whether dataDir already holds Raft state, in
// which case --bootstrap and --join are ignored.
func HasExistingState(dataDir string) (bool, error) {
	path := filepath.Join(dataDir, "raft.db")
	if _, err := os.Stat(path); err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: nil})
	if err != nil {
		return false, fmt.Errorf("open bolt store: %w", err)
	}
	defer bolt.Close()
	last, err := bolt.LastIndex()
	if err != nil {
		return false, err
	}
	if last > 0 {
		return true, nil
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, 2, hclog.NewNullLogger())
	if err != nil {
		return false, err
	}
	list, err := snaps.List()
	return len(list) > 0, err
}

// CaughtUp reports whether this server's state may answer stale reads: it
// has applied the log it held when it started, or, with a leader known,
// everything committed. A server restarted on its data dir starts with an
// empty state and replays its log only once it hears of the commit index;
// before that, a stale read would answer an empty or old table as the truth.
func (s *Store) CaughtUp() bool {
	if s.caughtUp.Load() {
		return true
	}
	applied := s.st.LastIndex()
	ok := s.startIndex > 0 && applied >= s.startIndex
	if !ok {
		if _, known := s.Leader(); known {
			commit := s.raft.CommitIndex()
			ok = commit > 0 && s.raft.AppliedIndex() >= commit
		}
	}
	if ok {
		s.caughtUp.Store(true)
	}
	return ok
}

// State returns the local replica of the state store, for reads.
func (s *Store) State() *state.Store { return s.st }

// Raft returns the underlying Raft instance, for stats and tests.
func (s *Store) Raft() *raft.Raft { return s.raft }

// IsLeader reports whether this server is the leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the current leader; ok is false when none is known.
func (s *Store) Leader() (api.Leader, bool) {
	addr, id := s.raft.LeaderWithID()
	if id == "" {
		return api.Leader{}, false
	}
	return api.Leader{ID: string(id), RaftAddr: string(addr), HTTPAddr: s.st.Servers()[string(id)]}, true
}

// LastContact is how long ago this server last heard from the leader; 0 on
// the leader.
func (s *Store) LastContact() time.Duration {
	if s.IsLeader() {
		return 0
	}
	lc := s.raft.LastContact()
	if lc.IsZero() {
		return 0
	}
	return s.now().Sub(lc)
}

// VerifyLeader confirms with a quorum that this server is still the leader
// and that its state holds every write committed before the call, so that a
// read of the local state that follows is linearizable.
//
// Leadership alone is not enough: a new leader learns that the last entries
// of earlier terms are committed only when an entry of its own term commits
// (Raft §5.4.2, §8), so until then its state may miss writes the previous
// leader acknowledged. It waits (up to ApplyTimeout or ctx) until the
// leader's first barrier of its term has been applied.
func (s *Store) VerifyLeader(ctx context.Context) error {
	if !s.begin() {
		return ErrShutdown
	}
	defer s.inflight.Done()
	term, err := s.waitReadyForReads(ctx)
	if err != nil {
		return err
	}
	if err := s.raft.VerifyLeader().Error(); err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) {
			// A read is always safe to send to the new leader.
			return fmt.Errorf("%w: %v", ErrNotLeader, err)
		}
		return mapRaftErr(err)
	}
	if s.raft.CurrentTerm() != term {
		return fmt.Errorf("%w: leadership changed while verifying", ErrNotLeader)
	}
	return nil
}

// waitReadyForReads waits until this server leads and has applied the
// barrier of its term; it returns that term.
func (s *Store) waitReadyForReads(ctx context.Context) (uint64, error) {
	timeout := time.NewTimer(s.cfg.ApplyTimeout)
	defer timeout.Stop()
	for {
		if s.raft.State() != raft.Leader {
			return 0, ErrNotLeader
		}
		term := s.raft.CurrentTerm()
		if s.readyTerm.Load() == term {
			return term, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-s.shutdownCh:
			return 0, ErrShutdown
		case <-timeout.C:
			return 0, fmt.Errorf("%w: the new leader has not applied the earlier terms' writes yet", ErrTimeout)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Apply proposes a command and waits until this server has applied it.
func (s *Store) Apply(ctx context.Context, cmd state.Command) (state.Result, error) {
	if !s.begin() {
		return state.Result{}, ErrShutdown
	}
	defer s.inflight.Done()
	if s.raft.State() != raft.Leader {
		return state.Result{}, ErrNotLeader
	}
	b, err := state.Encode(cmd)
	if err != nil {
		return state.Result{}, err
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	f := s.raft.Apply(b, timeout)
	if err := f.Error(); err != nil {
		return state.Result{}, mapRaftErr(err)
	}
	res, ok := f.Response().(state.Result)
	if !ok {
		return state.Result{}, fmt.Errorf("apply: unexpected response %T", f.Response())
	}
	return res, nil
}

func mapRaftErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost):
		return ErrLeadershipLost
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	}
	return err
}

// Join adds a server to the cluster as a voter and records its HTTP
// address. It is a no-op for a server already in the configuration with the
// same address.
func (s *Store) Join(ctx context.Context, req api.JoinRequest) error {
	if req.ID == "" || req.RaftAddr == "" {
		return &state.FieldError{Field: "id", Reason: "id and raft_addr must not be empty"}
	}
	if !s.IsLeader() {
		return ErrNotLeader
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return mapRaftErr(err)
	}
	member := false
	for _, srv := range cf.Configuration().Servers {
		sameID, sameAddr := srv.ID == raft.ServerID(req.ID), srv.Address == raft.ServerAddress(req.RaftAddr)
		switch {
		case sameID && sameAddr:
			member = true
		case sameID || sameAddr:
			s.logger.Info("removing a server whose id or address is rejoining", "id", srv.ID, "addr", srv.Address)
			if err := s.raft.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
				return fmt.Errorf("remove stale server %s: %w", srv.ID, mapRaftErr(err))
			}
		}
	}
	if !member {
		if err := s.raft.AddVoter(raft.ServerID(req.ID), raft.ServerAddress(req.RaftAddr), 0, 0).Error(); err != nil {
			return fmt.Errorf("add voter %s: %w", req.ID, mapRaftErr(err))
		}
		s.logger.Info("server joined", "id", req.ID, "raft_addr", req.RaftAddr, "http_addr", req.HTTPAddr)
	}
	if req.HTTPAddr != "" {
		if r, err := s.Apply(ctx, &state.SetServer{ID: req.ID, HTTPAddr: req.HTTPAddr}); err != nil {
			return err
		} else if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// RemoveServer removes a server from the cluster.
func (s *Store) RemoveServer(ctx context.Context, id string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return mapRaftErr(err)
	}
	found := false
	for _, srv := range cf.Configuration().Servers {
		if srv.ID == raft.ServerID(id) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("server %q is not in the configuration: %w", id, ErrNotFound)
	}
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
		return fmt.Errorf("remove server %s: %w", id, mapRaftErr(err))
	}
	if s.IsLeader() {
		if _, err := s.Apply(ctx, &state.RemoveServer{ID: id}); err != nil {
			return err
		}
	}
	return nil
}

// Peers lists the servers of the Raft configuration.
func (s *Store) Peers() ([]api.Peer, error) {
	cf := s.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, mapRaftErr(err)
	}
	_, leaderID := s.raft.LeaderWithID()
	https := s.st.Servers()
	var out []api.Peer
	for _, srv := range cf.Configuration().Servers {
		out = append(out, api.Peer{
			ID: string(srv.ID), RaftAddr: string(srv.Address), HTTPAddr: https[string(srv.ID)],
			Suffrage: srv.Suffrage.String(), Leader: srv.ID == leaderID,
		})
	}
	return out, nil
}

// Heartbeat records a node's heartbeat on the leader. Only a change of the
// node's status is written through Raft.
func (s *Store) Heartbeat(nodeID string) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	_, n, _ := s.st.Node(nodeID)
	if n == nil {
		return fmt.Errorf("node %q: %w", nodeID, ErrNotFound)
	}
	s.hbMu.Lock()
	s.hb.Beat(nodeID, s.now())
	s.hbMu.Unlock()
	if n.Status != state.NodeReady {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ApplyTimeout)
		defer cancel()
		r, err := s.Apply(ctx, &state.SetNodeStatus{ID: nodeID, Status: state.NodeReady})
		if err != nil {
			return err
		}
		return r.Err
	}
	return nil
}

// Snapshot returns the current state as a snapshot stream. On the leader it
// first waits for every committed write to be applied.
func (s *Store) Snapshot(ctx context.Context) (io.ReadCloser, error) {
	if s.IsLeader() {
		if err := s.raft.Barrier(s.cfg.ApplyTimeout).Error(); err != nil {
			return nil, mapRaftErr(err)
		}
	}
	var buf bytes.Buffer
	if err := s.st.Snapshot().Persist(&buf); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

// Restore replaces the whole state of the cluster with a snapshot taken by
// Snapshot.
func (s *Store) Restore(ctx context.Context, r io.Reader) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if _, err := state.ReadSnapshot(bytes.NewReader(data)); err != nil {
		return &state.FieldError{Field: "snapshot", Reason: err.Error()}
	}
	meta := &raft.SnapshotMeta{Version: raft.SnapshotVersionMax, Size: int64(len(data))}
	if err := s.raft.Restore(meta, bytes.NewReader(data), s.cfg.ApplyTimeout); err != nil {
		return fmt.Errorf("restore: %w", mapRaftErr(err))
	}
	return nil
}

// begin registers an operation that uses Raft futures; it is false once
// Shutdown has begun.
func (s *Store) begin() bool {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	if s.closing {
		return false
	}
	s.inflight.Add(1)
	return true
}

// WaitForLeader blocks until a leader is known or ctx ends.
func (s *Store) WaitForLeader(ctx context.Context) (api.Leader, error) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if l, ok := s.Leader(); ok {
			return l, nil
		}
		select {
		case <-ctx.Done():
			return api.Leader{}, fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-s.shutdownCh:
			return api.Leader{}, ErrShutdown
		case <-t.C:
		}
	}
}

// Stats returns Raft's statistics.
func (s *Store) Stats() map[string]string { return s.raft.Stats() }

// Shutdown stops the store. A leader first hands leadership to another
// voter, so that the cluster does not wait out an election timeout.
func (s *Store) Shutdown() error {
	var err error
	s.shutdownOnce.Do(func() {
		if s.IsLeader() && s.voters() > 1 {
			s.logger.Info("transferring leadership before shutdown")
			if terr := s.raft.LeadershipTransfer().Error(); terr != nil {
				s.logger.Warn("leadership transfer failed", "error", terr)
			}
		}
		s.opMu.Lock()
		s.closing = true
		s.opMu.Unlock()
		done := make(chan struct{})
		go func() { s.inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(s.cfg.ApplyTimeout):
			s.logger.Warn("shutting down with raft operations still waiting")
		}
		close(s.shutdownCh)
		err = s.raft.Shutdown().Error()
		s.wg.Wait()
		for _, c := range s.closer {
			if cerr := c.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
	})
	return err
}

func (s *Store) voters() int {
	cf := s.raft.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	n := 0
	for _, srv := range cf.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			n++
		}
	}
	return n
}
