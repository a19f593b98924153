package raftregistry

// Linearizability of writes and consistent reads under leader crashes and
// partitions: rounds of concurrent clients against a real cluster of Stores
// on a fault-injecting in-memory network (faulttransport_test.go), each round
// inside a testing/synctest bubble so that election timeouts pass in fake
// time, each round's history checked with porcupine.
//
// Reproduce a failing round with COEXIST_LIN_SEED=<its seed>; make rounds
// longer or more numerous with COEXIST_LIN_OPS and COEXIST_LIN_ROUNDS; see
// Raft's and the Store's logs with COEXIST_LIN_LOG=1.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/linearize"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

const (
	// linRounds is the number of fault rounds per run (each its own bubble).
	linRounds = 20
	// linClients is the number of concurrent clients per round.
	linClients = 4
	// linKeys is the number of registers (services) the clients share.
	linKeys = 4
	// linCheckTimeout bounds porcupine's search per history.
	linCheckTimeout = 30 * time.Second
	// linRoundDeadline stops a round's clients after this much fake time.
	linRoundDeadline = 5 * time.Minute
	// linWatchdog is how long (real time) a round may run before the test
	// binary dumps every goroutine and panics: fake time advances for ever
	// in a bubble where a client is stuck but Raft's timers keep firing.
	linWatchdog = 2 * time.Minute
)

// linOpsPerRound is how many operations the clients of one round attempt.
func linOpsPerRound() int {
	if v, err := strconv.Atoi(os.Getenv("COEXIST_LIN_OPS")); err == nil && v > 0 {
		return v
	}
	if linRace {
		return 500
	}
	return 1000
}

// ---------------------------------------------------------------------------
// The model: one register per key (internal/linearize). A register is the
// clients range of version 1.0.0 of the service Key.

type (
	linInput   = linearize.Input
	linOutput  = linearize.Output
	linHistory = linearize.History
)

var linModel = linearize.Model

// linNote says which server served an operation and how far its log and
// state machine were.
func linNote(s *Store, extra string) string {
	st := s.Stats()
	return fmt.Sprintf("%s term %s commit %s applied %s %s", s.cfg.NodeID, st["term"], st["commit_index"], st["applied_index"], extra)
}

// checkLinearizable checks a history with porcupine and, when it is not
// linearizable, writes the visualization to a file and returns its path.
func checkLinearizable(ops []porcupine.Operation) (porcupine.CheckResult, string, error) {
	return linearize.Check(ops, linCheckTimeout)
}

// ---------------------------------------------------------------------------
// The cluster: Stores on a faultNet, with in-memory stores that survive a
// crash so that a node restarts from its own log.

type linNode struct {
	id     string
	addr   raft.ServerAddress
	logs   *raft.InmemStore
	stable *raft.InmemStore
	snaps  *raft.InmemSnapshotStore
	raft   func() *raft.Config
}

type linCluster struct {
	net    *faultNet
	nodes  []*linNode
	logger hclog.Logger

	mu       sync.Mutex
	stores   []*Store // nil while the node is down
	closing  []bool   // the node is being taken down: no new calls
	inflight []int    // client calls running on the node
	starts   int
}

// linRaftConfig is fast Raft with frequent snapshots and few trailing logs,
// so that restarted and lagging nodes also catch up by InstallSnapshot.
func linRaftConfig() *raft.Config {
	c := fastRaft()
	c.SnapshotThreshold = 64
	c.SnapshotInterval = 50 * time.Millisecond
	c.TrailingLogs = 16
	return c
}

func linLogger() hclog.Logger {
	if os.Getenv("COEXIST_LIN_LOG") != "" {
		return hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: os.Stderr})
	}
	return hclog.NewNullLogger()
}

// newLinCluster starts n servers: the first bootstraps, the others join.
// raftCfg, when not nil, gives node i's Raft configuration.
func newLinCluster(n int, raftCfg func(i int) *raft.Config) (*linCluster, error) {
	c := &linCluster{net: newFaultNet(), logger: linLogger(),
		stores: make([]*Store, n), closing: make([]bool, n), inflight: make([]int, n)}
	for i := range n {
		id := fmt.Sprintf("s%d", i+1)
		rc := linRaftConfig
		if raftCfg != nil {
			rc = func() *raft.Config { return raftCfg(i) }
		}
		c.nodes = append(c.nodes, &linNode{id: id, addr: raft.ServerAddress(id),
			logs: raft.NewInmemStore(), stable: raft.NewInmemStore(), snaps: raft.NewInmemSnapshotStore(), raft: rc})
	}
	if err := c.start(0, true); err != nil {
		c.shutdown()
		return nil, err
	}
	if c.waitLeader(10*time.Second) != 0 {
		c.shutdown()
		return nil, errors.New("the bootstrap server did not become leader")
	}
	for i := 1; i < n; i++ {
		if err := c.start(i, false); err != nil {
			c.shutdown()
			return nil, err
		}
		nd := c.nodes[i]
		err := c.store(0).Join(context.Background(), api.JoinRequest{ID: nd.id, RaftAddr: string(nd.addr), HTTPAddr: "http://" + nd.id})
		if err != nil {
			c.shutdown()
			return nil, fmt.Errorf("join %s: %w", nd.id, err)
		}
	}
	return c, nil
}

func (c *linCluster) start(i int, bootstrap bool) error {
	nd := c.nodes[i]
	cfg := DefaultConfig()
	cfg.NodeID = nd.id
	cfg.HTTPAddr = "http://" + nd.id
	cfg.Bootstrap = bootstrap
	cfg.Raft = nd.raft()
	cfg.Transport = c.net.Transport(nd.addr)
	cfg.LogStore = nd.logs
	cfg.StableStore = nd.stable
	cfg.SnapshotStore = nd.snaps
	cfg.ApplyTimeout = 2 * time.Second
	cfg.RetireInterval = time.Second
	cfg.Logger = c.logger.Named(nd.id)
	s, err := New(cfg)
	if err != nil {
		return fmt.Errorf("start %s: %w", nd.id, err)
	}
	c.mu.Lock()
	c.stores[i] = s
	c.closing[i] = false
	c.starts++
	c.mu.Unlock()
	return nil
}

// enter registers a client call on node i's Store s; false when the node
// is down, restarted (s is stale) or being taken down.
func (c *linCluster) enter(i int, s *Store) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stores[i] != s || c.closing[i] {
		return false
	}
	c.inflight[i]++
	return true
}

func (c *linCluster) exit(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inflight[i]--
}

// store returns node i's Store, or nil while it is down.
func (c *linCluster) store(i int) *Store {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stores[i]
}

// leaders returns the nodes that believe they lead (an isolated old leader
// may for a while).
func (c *linCluster) leaders() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []int
	for i, s := range c.stores {
		if s != nil && s.IsLeader() {
			out = append(out, i)
		}
	}
	return out
}

// leader returns a node that believes it leads, or -1.
func (c *linCluster) leader() int {
	if ls := c.leaders(); len(ls) > 0 {
		return ls[0]
	}
	return -1
}

// waitLeader waits (in fake time) for a leader; -1 when none came.
func (c *linCluster) waitLeader(d time.Duration) int {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if l := c.leader(); l >= 0 {
			return l
		}
		time.Sleep(5 * time.Millisecond)
	}
	return -1
}

// stop takes node i down. hard stops Raft at once, as a crash would, and
// cuts the node off until it restarts; otherwise it is the Store's own
// Shutdown, which hands leadership over first.
//
// Either way it first lets the client calls running on the node return
// (cut off, the node steps down and they fail): a call whose command is
// still queued in Raft when Raft shuts down never returns (see
// hashicorp/raft#498 and the report on Store.Shutdown), whereas a real
// crash would end the client's connection. The wait polls with Sleep, so
// that fake time advances meanwhile.
func (c *linCluster) stop(i int, hard bool) error {
	if hard {
		c.net.Isolate(c.nodes[i].addr)
	}
	c.mu.Lock()
	c.closing[i] = true
	c.mu.Unlock()
	for {
		c.mu.Lock()
		n := c.inflight[i]
		c.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.mu.Lock()
	s := c.stores[i]
	c.stores[i] = nil
	c.mu.Unlock()
	if s == nil {
		return nil
	}
	if hard {
		_ = s.Raft().Shutdown().Error()
	}
	return s.Shutdown()
}

// shutdown stops every node and closes the network. Every Raft instance
// must be down before its bubble ends.
func (c *linCluster) shutdown() {
	for i := range c.nodes {
		_ = c.stop(i, true)
	}
	c.net.Close()
}

// waitConverged waits until every live server holds the same state.
func (c *linCluster) waitConverged(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		var first *state.Snapshot
		same := true
		for i := range c.nodes {
			s := c.store(i)
			if s == nil {
				continue
			}
			snap := s.State().Snapshot()
			if first == nil {
				first = snap
			} else if !first.Equal(snap) {
				same = false
			}
		}
		if same {
			return nil
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for i := range c.nodes {
				if s := c.store(i); s != nil {
					fmt.Fprintf(&b, " %s@%d", c.nodes[i].id, s.State().LastIndex())
				}
			}
			return fmt.Errorf("servers did not converge in %s: last indexes%s", d, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// Clients.

type linStats struct {
	writesOK, writesAmbiguous, writesNotProposed atomic.Int64
	readsOK, readsFailed, gaveUp                 atomic.Int64
}

func (s *linStats) String() string {
	return fmt.Sprintf("writes ok %d, ambiguous %d, refused before proposing %d; reads ok %d, refused %d; gave up %d",
		s.writesOK.Load(), s.writesAmbiguous.Load(), s.writesNotProposed.Load(),
		s.readsOK.Load(), s.readsFailed.Load(), s.gaveUp.Load())
}

type linRun struct {
	c     *linCluster
	h     *linHistory
	stats linStats
	keys  []string
	seq   atomic.Int64 // makes every written value unique

	mu       sync.Mutex
	problems []string
}

func (r *linRun) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

type linClient struct {
	r    *linRun
	rng  *rand.Rand
	id   int // porcupine client id
	hint int
	// lose, when set, is asked before each write; true makes the client
	// acknowledge the write without sending it (a broken store, for the
	// test that shows the checker catches it).
	lose func() bool
}

func (r *linRun) newClient(rng *rand.Rand) *linClient {
	return &linClient{r: r, rng: rng, id: r.h.NewClient()}
}

// pick returns the server this client sends its next operation to: one that
// believes it leads (several may), now and then any live server, which must
// then refuse. nil when none is up for a long while.
// The caller brackets its call with enter and exit.
func (cl *linClient) pick() (int, *Store) {
	n := len(cl.r.c.nodes)
	for range 400 {
		if cl.rng.IntN(10) == 0 {
			i := cl.rng.IntN(n)
			if s := cl.r.c.store(i); s != nil {
				return i, s
			}
		}
		if s := cl.r.c.store(cl.hint); s != nil && s.IsLeader() {
			return cl.hint, s
		}
		if ls := cl.r.c.leaders(); len(ls) > 0 {
			cl.hint = ls[cl.rng.IntN(len(ls))]
			continue
		}
		time.Sleep(10 * time.Millisecond)
	}
	return -1, nil
}

// linNotProposed reports whether a failed Apply certainly did not propose
// its command. The Store's contract: ErrNotLeader (its own check, or Raft
// refusing the command before it reached the log) means not proposed;
// every other error (ErrLeadershipLost, ErrShutdown, ErrTimeout...) leaves
// the write's outcome unknown. A Store that broke the contract (calling a
// maybe-applied write ErrNotLeader) would make the client retry it as a new
// write and record the first attempt as never having happened, which the
// checker catches.
func linNotProposed(err error) bool {
	return errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrLeadershipLost)
}

// write declares key's version 1.0.0 with a new clients range, retrying on
// servers that refuse before proposing.
func (cl *linClient) write(key string) {
	r := cl.r
	val := fmt.Sprintf(">= 1.%d", r.seq.Add(1))
	in := linInput{Write: true, Key: key, Value: val}
	for range 100 {
		i, s := cl.pick()
		if s == nil {
			break
		}
		if !r.c.enter(i, s) {
			time.Sleep(time.Millisecond)
			continue
		}
		call := r.h.Tick()
		if cl.lose != nil && s.IsLeader() && cl.lose() {
			r.h.Record(cl.id, in, linOutput{}, call, r.h.Tick())
			r.stats.writesOK.Add(1)
			r.c.exit(i)
			return
		}
		res, err := s.Apply(context.Background(), &state.DeclareVersion{Service: key, Version: "1.0.0", Clients: val})
		ret := r.h.Tick()
		r.c.exit(i)
		switch {
		case err == nil && res.Err == nil:
			r.h.RecordOn(cl.id, in, linOutput{}, call, ret, linNote(s, fmt.Sprintf("index %d", res.Index)))
			r.stats.writesOK.Add(1)
			return
		case err == nil:
			r.problem("write %s = %q rejected by the state store: %v", key, val, res.Err)
			return
		case linNotProposed(err):
			r.stats.writesNotProposed.Add(1)
			time.Sleep(time.Duration(1+cl.rng.IntN(10)) * time.Millisecond)
		default:
			// Maybe applied, maybe not, maybe later: pending for ever.
			r.h.RecordOn(cl.id, in, linOutput{Ambiguous: true}, call, 0, linNote(s, err.Error()))
			r.stats.writesAmbiguous.Add(1)
			cl.id = r.h.NewClient()
			return
		}
	}
	r.stats.gaveUp.Add(1)
}

// read is a consistent read as the HTTP API serves ?consistent: verify
// leadership with a quorum, then read the local state. A read that fails has
// no effect and is not recorded. It reports whether it succeeded.
func (cl *linClient) read(key string) bool {
	r := cl.r
	for range 100 {
		i, s := cl.pick()
		if s == nil {
			break
		}
		if !r.c.enter(i, s) {
			time.Sleep(time.Millisecond)
			continue
		}
		call := r.h.Tick()
		if err := s.VerifyLeader(context.Background()); err != nil {
			r.c.exit(i)
			r.stats.readsFailed.Add(1)
			time.Sleep(time.Duration(1+cl.rng.IntN(10)) * time.Millisecond)
			continue
		}
		var out linOutput
		if v := s.State().Version(state.VersionKey{Service: key, Version: "1.0.0"}); v != nil {
			out.Value = v.Clients
		}
		ret := r.h.Tick()
		r.c.exit(i)
		r.h.RecordOn(cl.id, linInput{Key: key}, out, call, ret, linNote(s, ""))
		r.stats.readsOK.Add(1)
		return true
	}
	r.stats.gaveUp.Add(1)
	return false
}

// ---------------------------------------------------------------------------
// The nemesis.

type linFault struct {
	name  string
	apply func(c *linCluster, rng *rand.Rand) (undo func() error)
}

func linPickLeader(c *linCluster, rng *rand.Rand) int {
	if ls := c.leaders(); len(ls) > 0 {
		return ls[rng.IntN(len(ls))]
	}
	return rng.IntN(len(c.nodes))
}

func linPickOther(c *linCluster, rng *rand.Rand, not int) int {
	i := rng.IntN(len(c.nodes) - 1)
	if i >= not {
		i++
	}
	return i
}

// slowReplication delays AppendEntries that carry entries; heartbeats (and
// the heartbeats VerifyLeader sends) pass at once.
func slowReplication(upTo time.Duration) func(from, to raft.ServerAddress, rpc any) time.Duration {
	return func(_, _ raft.ServerAddress, rpc any) time.Duration {
		if ae, ok := rpc.(*raft.AppendEntriesRequest); ok && len(ae.Entries) > 0 {
			return time.Duration(rand.Int64N(int64(upTo)))
		}
		return 0
	}
}

var linFaults = []linFault{
	{"isolate-leader", func(c *linCluster, rng *rand.Rand) func() error {
		c.net.Isolate(c.nodes[linPickLeader(c, rng)].addr)
		return nil
	}},
	{"isolate-follower", func(c *linCluster, rng *rand.Rand) func() error {
		c.net.Isolate(c.nodes[linPickOther(c, rng, linPickLeader(c, rng))].addr)
		return nil
	}},
	{"crash-leader", func(c *linCluster, rng *rand.Rand) func() error {
		l := linPickLeader(c, rng)
		_ = c.stop(l, true)
		return func() error { c.net.Heal(c.nodes[l].addr); return c.start(l, false) }
	}},
	{"shutdown-leader", func(c *linCluster, rng *rand.Rand) func() error {
		l := linPickLeader(c, rng)
		_ = c.stop(l, false)
		return func() error { return c.start(l, false) }
	}},
	{"partition", func(c *linCluster, rng *rand.Rand) func() error {
		addrs := make([]raft.ServerAddress, len(c.nodes))
		for i, nd := range c.nodes {
			addrs[i] = nd.addr
		}
		rng.Shuffle(len(addrs), func(i, j int) { addrs[i], addrs[j] = addrs[j], addrs[i] })
		k := 1 + rng.IntN((len(addrs)-1)/2)
		c.net.Partition(addrs[:k], addrs[k:])
		return nil
	}},
	{"one-way-cut-from-leader", func(c *linCluster, rng *rand.Rand) func() error {
		l := linPickLeader(c, rng)
		c.net.CutLink(c.nodes[l].addr, c.nodes[linPickOther(c, rng, l)].addr)
		return nil
	}},
	{"slow-replication-then-isolate-leader", func(c *linCluster, rng *rand.Rand) func() error {
		c.net.SetDelay(slowReplication(50 * time.Millisecond))
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		c.net.Isolate(c.nodes[linPickLeader(c, rng)].addr)
		return nil
	}},
	{"delays", func(c *linCluster, rng *rand.Rand) func() error {
		upTo := time.Duration(1+rng.IntN(15)) * time.Millisecond
		c.net.SetDelay(func(_, _ raft.ServerAddress, _ any) time.Duration {
			return time.Duration(rand.Int64N(int64(upTo)))
		})
		return nil
	}},
}

// nemesis injects one fault after another until stop is closed, each held
// for a while then undone (a crashed node restarts on its own log).
func (r *linRun) nemesis(rng *rand.Rand, stop <-chan struct{}) (faults []string) {
	c := r.c
	for {
		select {
		case <-stop:
			return faults
		case <-time.After(time.Duration(10+rng.IntN(100)) * time.Millisecond):
		}
		f := linFaults[rng.IntN(len(linFaults))]
		undo := f.apply(c, rng)
		faults = append(faults, f.name)
		select {
		case <-stop:
		case <-time.After(time.Duration(50+rng.IntN(400)) * time.Millisecond):
		}
		c.net.HealAll()
		if undo != nil {
			if err := undo(); err != nil {
				r.problem("undo %s: %v", f.name, err)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// A round.

type linRoundResult struct {
	ops      []porcupine.Operation
	problems []string
	faults   []string
	stats    string
	nodes    int
	elapsed  time.Duration // fake time
	rpcs     int64
	dropped  int64
	restarts int
}

// runLinRound runs one round; it must be called inside a bubble.
func runLinRound(seed uint64, nOps int) linRoundResult {
	rng := rand.New(rand.NewPCG(seed, 0x6c696e))
	nodes := 3
	if rng.IntN(3) == 0 {
		nodes = 5
	}
	res := linRoundResult{nodes: nodes}
	start := time.Now()
	c, err := newLinCluster(nodes, nil)
	if err != nil {
		res.problems = append(res.problems, err.Error())
		return res
	}
	r := &linRun{c: c, h: &linHistory{}}
	for k := range linKeys {
		r.keys = append(r.keys, fmt.Sprintf("svc%d", k))
	}

	var budget atomic.Int64
	budget.Store(int64(nOps))
	stop := make(chan struct{})
	nemesisDone := make(chan []string)
	nemRng := rand.New(rand.NewPCG(seed, 1))
	go func() { nemesisDone <- r.nemesis(nemRng, stop) }()

	// A round takes a few seconds of fake time; this deadline only stops a
	// round that cannot make progress.
	deadline := start.Add(linRoundDeadline)
	var wg sync.WaitGroup
	for i := range linClients {
		cl := r.newClient(rand.New(rand.NewPCG(seed, uint64(100+i))))
		wg.Go(func() {
			for budget.Add(-1) >= 0 {
				if time.Now().After(deadline) {
					r.problem("operations still left after %s of fake time", linRoundDeadline)
					return
				}
				key := r.keys[cl.rng.IntN(len(r.keys))]
				if cl.rng.IntN(2) == 0 {
					cl.write(key)
				} else {
					cl.read(key)
				}
				time.Sleep(time.Duration(cl.rng.IntN(16)) * time.Millisecond)
			}
		})
	}
	wg.Wait()
	close(stop)
	res.faults = <-nemesisDone

	// Heal, bring every node back, and read every key once more: the
	// final state must hold every acknowledged write.
	c.net.HealAll()
	for i := range c.nodes {
		if c.store(i) == nil {
			if err := c.start(i, false); err != nil {
				r.problem("restart after the round: %v", err)
			}
		}
	}
	if c.waitLeader(10*time.Second) < 0 {
		r.problem("no leader 10s after healing")
	}
	final := r.newClient(rand.New(rand.NewPCG(seed, 2)))
	for _, k := range r.keys {
		if !final.read(k) {
			r.problem("final read of %s failed", k)
		}
	}
	if err := c.waitConverged(10 * time.Second); err != nil {
		r.problem("%v", err)
	}
	c.shutdown()

	res.ops = r.h.Operations()
	res.problems = append(res.problems, r.problems...)
	res.stats = r.stats.String()
	res.elapsed = time.Since(start)
	res.rpcs, res.dropped = c.net.sent.Load(), c.net.dropped.Load()
	res.restarts = c.starts - nodes
	return res
}

// startLinWatchdog panics, after printing every goroutine's stack, if the
// returned function is not called within linWatchdog.
func startLinWatchdog(what string) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(linWatchdog):
			buf := make([]byte, 64<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "%s\n", buf)
			panic(fmt.Sprintf("%s still running after %s: stuck (stacks above)", what, linWatchdog))
		}
	}()
	return func() { close(done) }
}

func linBaseSeed(t *testing.T) uint64 {
	if v := os.Getenv("COEXIST_LIN_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("COEXIST_LIN_SEED=%q: %v", v, err)
		}
		return s
	}
	return rand.Uint64()
}

// TestLinearizabilityUnderFaults records histories of concurrent writes and
// consistent reads while the nemesis isolates, partitions, crashes and
// restarts servers, and checks each with porcupine.
func TestLinearizabilityUnderFaults(t *testing.T) {
	rounds := linRounds
	if v, err := strconv.Atoi(os.Getenv("COEXIST_LIN_ROUNDS")); err == nil && v > rounds {
		rounds = v
	}
	nOps := linOpsPerRound()
	base := linBaseSeed(t)
	t.Logf("%d rounds of %d operations; first seed %d (COEXIST_LIN_SEED=%d reruns them)", rounds, nOps, base, base)
	for i := range rounds {
		seed := base + uint64(i)
		t.Run(fmt.Sprintf("round%02d_seed%d", i, seed), func(t *testing.T) {
			var res linRoundResult
			stop := startLinWatchdog(fmt.Sprintf("round %d (seed %d)", i, seed))
			synctest.Test(t, func(t *testing.T) { res = runLinRound(seed, nOps) })
			stop()
			for _, p := range res.problems {
				t.Errorf("seed %d: %s", seed, p)
			}
			t.Logf("%d servers, %.1fs fake time, %d ops (%s), %d faults %v, %d restarts, %d of %d rpcs dropped",
				res.nodes, res.elapsed.Seconds(), len(res.ops), res.stats, len(res.faults), res.faults, res.restarts, res.dropped, res.rpcs)
			if len(res.faults) == 0 {
				t.Errorf("seed %d: the round ended before any fault", seed)
			}
			if len(res.ops) < nOps/2 {
				t.Errorf("seed %d: only %d of %d operations completed", seed, len(res.ops), nOps)
			}
			began := time.Now()
			result, path, err := checkLinearizable(res.ops)
			t.Logf("porcupine: %s in %s", result, time.Since(began).Round(time.Millisecond))
			switch {
			case err != nil:
				t.Fatalf("seed %d: history is %s; writing its visualization: %v", seed, result, err)
			case result == porcupine.Illegal:
				t.Fatalf("seed %d: history of %d operations is not linearizable; visualization: %s", seed, len(res.ops), path)
			case result == porcupine.Unknown:
				t.Fatalf("seed %d: porcupine gave up after %s; visualization: %s", seed, linCheckTimeout, path)
			}
		})
	}
}

// ---------------------------------------------------------------------------
// The checker catches what it should.

func linOp(client int, in linInput, out linOutput, call, ret int64) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret}
}

func TestLinearizabilityCheckerRejectsLostWrite(t *testing.T) {
	w := func(v string) linInput { return linInput{Write: true, Key: "k", Value: v} }
	rd := linInput{Key: "k"}
	seen := func(v string) linOutput { return linOutput{Value: v} }
	cases := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"acknowledged write lost", []porcupine.Operation{
			linOp(0, w("a"), linOutput{}, 1, 2),
			linOp(1, w("b"), linOutput{}, 3, 4),
			linOp(0, rd, seen("a"), 5, 6),
		}, porcupine.Illegal},
		{"acknowledged write never seen", []porcupine.Operation{
			linOp(0, w("a"), linOutput{}, 1, 2),
			linOp(1, rd, seen(""), 3, 4),
		}, porcupine.Illegal},
		{"read goes back in time", []porcupine.Operation{
			linOp(0, w("a"), linOutput{}, 1, 2),
			linOp(0, w("b"), linOutput{Ambiguous: true}, 3, 100),
			linOp(1, rd, seen("b"), 4, 5),
			linOp(2, rd, seen("a"), 6, 7),
		}, porcupine.Illegal},
		// The same histories with the write's outcome unknown or the read
		// concurrent are fine: the checker does not cry wolf.
		{"ambiguous write lost", []porcupine.Operation{
			linOp(0, w("a"), linOutput{}, 1, 2),
			linOp(1, w("b"), linOutput{Ambiguous: true}, 3, 100),
			linOp(0, rd, seen("a"), 5, 6),
		}, porcupine.Ok},
		{"ambiguous write seen late", []porcupine.Operation{
			linOp(0, w("a"), linOutput{}, 1, 2),
			linOp(1, w("b"), linOutput{Ambiguous: true}, 3, 100),
			linOp(0, rd, seen("a"), 5, 6),
			linOp(0, rd, seen("b"), 7, 8),
		}, porcupine.Ok},
		{"read concurrent with the write", []porcupine.Operation{
			linOp(0, w("a"), linOutput{}, 1, 2),
			linOp(1, w("b"), linOutput{}, 3, 6),
			linOp(0, rd, seen("a"), 4, 5),
		}, porcupine.Ok},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := porcupine.CheckOperationsTimeout(linModel, tc.ops, 10*time.Second); got != tc.want {
				t.Fatalf("porcupine says %s, want %s", got, tc.want)
			}
		})
	}

	// A real cluster behind a broken client that acknowledges one write
	// without sending it: the recorded history must be rejected.
	t.Run("broken store drops an acknowledged write", func(t *testing.T) {
		var ops []porcupine.Operation
		var problems []string
		synctest.Test(t, func(t *testing.T) {
			c, err := newLinCluster(3, nil)
			if err != nil {
				problems = append(problems, err.Error())
				return
			}
			r := &linRun{c: c, h: &linHistory{}}
			cl := r.newClient(rand.New(rand.NewPCG(1, 2)))
			n := 0
			cl.lose = func() bool { n++; return n == 3 }
			for range 3 {
				cl.write("k")
			}
			cl.read("k")
			c.shutdown()
			ops, problems = r.h.Operations(), r.problems
		})
		if len(problems) > 0 {
			t.Fatal(problems)
		}
		if len(ops) != 4 {
			t.Fatalf("recorded %d operations, want 4", len(ops))
		}
		if got := porcupine.CheckOperationsTimeout(linModel, ops, 10*time.Second); got != porcupine.Illegal {
			t.Fatalf("porcupine says %s for a history with a lost write: %+v", got, ops)
		}
	})
}

// ---------------------------------------------------------------------------
// A consistent read on an isolated old leader.

// TestConsistentReadOnIsolatedLeaderFails isolates a leader that keeps
// believing it leads (its lease is long) while the others elect a new leader
// and accept a write. A plain read on the old leader is stale, and porcupine
// says so; the consistent read there fails instead of answering.
func TestConsistentReadOnIsolatedLeaderFails(t *testing.T) {
	var (
		problems                []string
		staleOps, consistentOps []porcupine.Operation
		verifyErr               error
		oldStillLeader          bool
	)
	synctest.Test(t, func(t *testing.T) {
		// The old leader checks its lease every 2s; the others elect
		// within about 1s. (A follower's timeout must exceed the
		// leader's heartbeat period, HeartbeatTimeout/10.)
		c, err := newLinCluster(3, func(i int) *raft.Config {
			rc := fastRaft()
			d := 300 * time.Millisecond
			if i == 0 {
				d = 2 * time.Second
			}
			rc.HeartbeatTimeout, rc.ElectionTimeout, rc.LeaderLeaseTimeout = d, d, d
			return rc
		})
		if err != nil {
			problems = append(problems, err.Error())
			return
		}
		defer c.shutdown()
		fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

		h := &linHistory{}
		key := state.VersionKey{Service: "k", Version: "1.0.0"}
		write := func(s *Store, v string) bool {
			call := h.Tick()
			res, err := s.Apply(context.Background(), &state.DeclareVersion{Service: key.Service, Version: key.Version, Clients: v})
			if err != nil || res.Err != nil {
				fail("write %q: %v %v", v, err, res.Err)
				return false
			}
			h.Record(0, linInput{Write: true, Key: "k", Value: v}, linOutput{}, call, h.Tick())
			return true
		}
		old := c.store(0)
		if !write(old, ">= 1.1") {
			return
		}
		for i := range c.nodes {
			s := c.store(i)
			if err := waitFor(10*time.Second, func() bool { return s.State().Version(key) != nil }); err != nil {
				fail("replication of the first write to %s: %v", c.nodes[i].id, err)
				return
			}
		}

		c.net.Isolate(c.nodes[0].addr)
		var next *Store
		if err := waitFor(10*time.Second, func() bool {
			for i := 1; i < len(c.nodes); i++ {
				if s := c.store(i); s.IsLeader() {
					next = s
					return true
				}
			}
			return false
		}); err != nil {
			fail("no new leader after isolating the old one: %v", err)
			return
		}
		if !write(next, ">= 1.2") {
			return
		}
		oldStillLeader = old.IsLeader()

		// What a read without verification would answer.
		stale := h.Tick()
		v := old.State().Version(key)
		h.Record(1, linInput{Key: "k"}, linOutput{Value: v.Clients}, stale, h.Tick())
		staleOps = h.Operations()

		// The consistent read: verify first.
		verifyErr = old.VerifyLeader(context.Background())

		// And on the new leader it succeeds and sees the new value.
		h2 := &linHistory{}
		h2.Record(0, linInput{Write: true, Key: "k", Value: ">= 1.1"}, linOutput{}, h2.Tick(), h2.Tick())
		h2.Record(0, linInput{Write: true, Key: "k", Value: ">= 1.2"}, linOutput{}, h2.Tick(), h2.Tick())
		call := h2.Tick()
		if err := next.VerifyLeader(context.Background()); err != nil {
			fail("consistent read on the new leader: %v", err)
			return
		}
		h2.Record(1, linInput{Key: "k"}, linOutput{Value: next.State().Version(key).Clients}, call, h2.Tick())
		consistentOps = h2.Operations()
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if !oldStillLeader {
		t.Fatal("the isolated old leader had already stepped down: the test shows nothing; lengthen its lease")
	}
	if got := porcupine.CheckOperations(linModel, staleOps); got {
		t.Fatalf("porcupine accepts a stale read from the old leader: %+v", staleOps)
	}
	if verifyErr == nil {
		t.Fatal("VerifyLeader succeeded on an isolated old leader")
	}
	// Raft answers ErrLeadershipLost when it steps down with the check
	// pending; a read is always safe to retry, so ErrNotLeader is the
	// better answer, but either refuses the stale read.
	if !errors.Is(verifyErr, ErrNotLeader) && !errors.Is(verifyErr, ErrLeadershipLost) {
		t.Errorf("VerifyLeader on the isolated old leader: %v, want ErrNotLeader", verifyErr)
	}
	t.Logf("consistent read on the isolated old leader: %v", verifyErr)
	if !porcupine.CheckOperations(linModel, consistentOps) {
		t.Fatalf("consistent read on the new leader is not linearizable: %+v", consistentOps)
	}
}

// waitFor polls cond (in a bubble's fake time) until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("still false after %s", d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// TestConsistentReadOnNewLeaderSeesEarlierWrites: a write is acknowledged by
// a leader that is cut off at once, before the followers learn that the
// write committed. A follower that has the entry becomes leader; while its
// log replication is slow (heartbeats are not), a consistent read on it must
// still see the write: Raft's VerifyLeader alone does not ensure that, the
// new leader must first commit an entry of its own term and apply the log
// up to it (Raft §8; Consul's "ready for consistent reads").
func TestConsistentReadOnNewLeaderSeesEarlierWrites(t *testing.T) {
	var (
		problems []string
		ops      []porcupine.Operation
		lagged   bool
	)
	synctest.Test(t, func(t *testing.T) {
		c, err := newLinCluster(3, func(int) *raft.Config { return fastRaft() })
		if err != nil {
			problems = append(problems, err.Error())
			return
		}
		defer c.shutdown()
		fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		h := &linHistory{}
		key := state.VersionKey{Service: "k", Version: "1.0.0"}
		write := func(s *Store, v string) bool {
			call := h.Tick()
			res, err := s.Apply(context.Background(), &state.DeclareVersion{Service: key.Service, Version: key.Version, Clients: v})
			if err != nil || res.Err != nil {
				fail("write %q: %v %v", v, err, res.Err)
				return false
			}
			h.RecordOn(0, linInput{Write: true, Key: "k", Value: v}, linOutput{}, call, h.Tick(), linNote(s, ""))
			return true
		}
		old := c.store(0)
		if !write(old, ">= 1.1") {
			return
		}
		for i := range c.nodes {
			s := c.store(i)
			if err := waitFor(10*time.Second, func() bool { return s.State().Version(key) != nil }); err != nil {
				fail("replication of the first write to %s: %v", c.nodes[i].id, err)
				return
			}
		}
		if !write(old, ">= 1.2") {
			return
		}
		// No fake time passes between the acknowledgement and the cut.
		c.net.SetDelay(func(_, _ raft.ServerAddress, rpc any) time.Duration {
			if ae, ok := rpc.(*raft.AppendEntriesRequest); ok && len(ae.Entries) > 0 {
				return 300 * time.Millisecond
			}
			return 0
		})
		c.net.Isolate(c.nodes[0].addr)
		for i := 1; i < len(c.nodes); i++ {
			if v := c.store(i).State().Version(key); v != nil && v.Clients == ">= 1.1" {
				lagged = true
			}
		}
		var next *Store
		if err := waitFor(10*time.Second, func() bool {
			for i := 1; i < len(c.nodes); i++ {
				if s := c.store(i); s.IsLeader() {
					next = s
					return true
				}
			}
			return false
		}); err != nil {
			fail("no new leader: %v", err)
			return
		}
		call := h.Tick()
		if err := next.VerifyLeader(context.Background()); err != nil {
			fail("consistent read on the new leader: %v", err)
			return
		}
		var out linOutput
		if v := next.State().Version(key); v != nil {
			out.Value = v.Clients
		}
		h.RecordOn(1, linInput{Key: "k"}, out, call, h.Tick(), linNote(next, ""))
		ops = h.Operations()
	})
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	if !lagged {
		t.Log("the followers had already applied the write when the leader was cut off: this run shows nothing")
	}
	if !porcupine.CheckOperations(linModel, ops) {
		t.Fatalf("stale consistent read on a new leader:\n%s", linearize.Dump(ops, linCheckTimeout))
	}
}
