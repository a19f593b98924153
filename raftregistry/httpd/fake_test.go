package httpd

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// fakeStore is a Store over a real state.Store: Apply applies at the next
// index at once. Func fields, when set, replace a method.
type fakeStore struct {
	st *state.Store

	mu      sync.Mutex
	index   uint64
	applied []state.Command
	joins   []api.JoinRequest
	removed []string

	leader      atomic.Bool
	catchingUp  atomic.Bool
	leaderInfo  atomic.Pointer[api.Leader]
	lastContact time.Duration
	verifies    atomic.Int32

	census   *census.Fleet
	censusCh chan struct{}

	applyFn  func(ctx context.Context, cmd state.Command) (state.Result, error)
	verifyFn func(ctx context.Context) error
}

func newFakeStore() *fakeStore {
	f := &fakeStore{st: state.New()}
	f.leader.Store(true)
	f.leaderInfo.Store(&api.Leader{ID: "s1", RaftAddr: "127.0.0.1:7701"})
	return f
}

// applyNow applies cmd directly, as Raft would have, for test setup.
func (f *fakeStore) applyNow(t testing.TB, cmd state.Command) state.Result {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	res := f.st.Apply(f.index, cmd)
	if res.Err != nil {
		t.Fatalf("setup: apply %T: %v", cmd, res.Err)
	}
	return res
}

func (f *fakeStore) applies() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.applied)
}

func (f *fakeStore) Apply(ctx context.Context, cmd state.Command) (state.Result, error) {
	if f.applyFn != nil {
		return f.applyFn(ctx, cmd)
	}
	if !f.leader.Load() {
		return state.Result{}, raftregistry.ErrNotLeader
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, cmd)
	f.index++
	return f.st.Apply(f.index, cmd), nil
}

func (f *fakeStore) State() *state.Store { return f.st }
func (f *fakeStore) CaughtUp() bool      { return !f.catchingUp.Load() }
func (f *fakeStore) IsLeader() bool      { return f.leader.Load() }

func (f *fakeStore) Leader() (api.Leader, bool) {
	l := f.leaderInfo.Load()
	if l == nil {
		return api.Leader{}, false
	}
	return *l, true
}

func (f *fakeStore) LastContact() time.Duration {
	if f.leader.Load() {
		return 0
	}
	return f.lastContact
}

func (f *fakeStore) VerifyLeader(ctx context.Context) error {
	f.verifies.Add(1)
	if f.verifyFn != nil {
		return f.verifyFn(ctx)
	}
	if !f.leader.Load() {
		return raftregistry.ErrNotLeader
	}
	return nil
}

func (f *fakeStore) Join(_ context.Context, req api.JoinRequest) error {
	if !f.leader.Load() {
		return raftregistry.ErrNotLeader
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.joins = append(f.joins, req)
	return nil
}

func (f *fakeStore) RemoveServer(_ context.Context, id string) error {
	if !f.leader.Load() {
		return raftregistry.ErrNotLeader
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, id)
	return nil
}

func (f *fakeStore) Peers() ([]api.Peer, error) {
	return []api.Peer{{ID: "s1", RaftAddr: "127.0.0.1:7701", Suffrage: "voter", Leader: true}}, nil
}

func (f *fakeStore) Heartbeat(nodeID string) error {
	if !f.leader.Load() {
		return raftregistry.ErrNotLeader
	}
	_, n, _ := f.st.Node(nodeID)
	if n == nil {
		return raftregistry.ErrNotFound
	}
	if n.Status != api.NodeReady {
		_, err := f.Apply(context.Background(), &state.SetNodeStatus{ID: nodeID, Status: api.NodeReady})
		return err
	}
	return nil
}

func (f *fakeStore) Snapshot(context.Context) (io.ReadCloser, error) {
	var buf bytes.Buffer
	if err := f.st.Snapshot().Persist(&buf); err != nil {
		return nil, err
	}
	return io.NopCloser(&buf), nil
}

func (f *fakeStore) Restore(_ context.Context, r io.Reader) error {
	if !f.leader.Load() {
		return raftregistry.ErrNotLeader
	}
	snap, err := state.ReadSnapshot(r)
	if err != nil {
		return err
	}
	f.st.Restore(snap)
	return nil
}

// Secrets of the tokens every test env holds.
const (
	mgmtSecret   = "management-secret-0123456789"
	opSecret     = "operator-secret"
	readSecret   = "read-secret"
	agent1Secret = "agent-n1-secret"
	agent2Secret = "agent-n2-secret"
	// envSecret is the env value of container c1.
	envSecret = "hunter2"
)

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// testEnv is one registry server under test: a fake store, the Server and an
// httptest server in front of it.
type testEnv struct {
	t    *testing.T
	fake *fakeStore
	srv  *Server
	hs   *httptest.Server
}

// newEnv starts a leader holding tokens of every role, nodes n1 and n2,
// versions orders@1.0.0 (>= 1.0, < 2.0) and orders@2.0.0 (>= 2.0), and
// container c1 on n1 holding orders@1.0.0 with env SECRET=hunter2.
func newEnv(t *testing.T, opts ...func(*Config)) *testEnv {
	t.Helper()
	f := newFakeStore()
	seed(t, f)
	return startEnv(t, f, opts...)
}

func startEnv(t *testing.T, f *fakeStore, opts ...func(*Config)) *testEnv {
	t.Helper()
	cfg := Config{Store: f, ManagementToken: mgmtSecret}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &testEnv{t: t, fake: f, srv: srv, hs: hs}
}

func seed(t testing.TB, f *fakeStore) {
	t.Helper()
	for role, secret := range map[string]string{api.RoleOperator: opSecret, api.RoleRead: readSecret} {
		f.applyNow(t, &state.CreateToken{AccessorID: role + "-accessor", SecretHash: hashOf(secret), Role: role})
	}
	f.applyNow(t, &state.CreateToken{AccessorID: "agent-n1-accessor", SecretHash: hashOf(agent1Secret), Role: api.RoleAgent, Node: "n1"})
	f.applyNow(t, &state.CreateToken{AccessorID: "agent-n2-accessor", SecretHash: hashOf(agent2Secret), Role: api.RoleAgent, Node: "n2"})
	f.applyNow(t, &state.RegisterNode{ID: "n1", Address: "10.0.0.1", Gateway: "10.0.0.1:8080"})
	f.applyNow(t, &state.RegisterNode{ID: "n2", Address: "10.0.0.2", Gateway: "10.0.0.2:8080"})
	f.applyNow(t, &state.DeclareVersion{Service: "orders", Version: "1.0.0", Clients: ">= 1.0, < 2.0"})
	f.applyNow(t, &state.DeclareVersion{Service: "orders", Version: "2.0.0", Clients: ">= 2.0"})
	spec := state.SpecFromAPI(&api.ContainerRequest{Node: "n1",
		Services: []api.ServiceRef{{Service: "orders", Version: "1.0.0"}},
		Config:   api.DriverConfig{Command: "/bin/orders", Env: map[string]string{"SECRET": envSecret}}})
	f.applyNow(t, &state.PutContainer{ID: "c1", Spec: spec})
}

// response is an answer, read whole.
type response struct {
	code   int
	header http.Header
	body   string
}

// errorMessage returns the "error" of a JSON error answer.
func (r *response) errorMessage(t *testing.T) string {
	t.Helper()
	var er api.ErrorResponse
	if err := json.Unmarshal([]byte(r.body), &er); err != nil {
		t.Fatalf("error answer is not JSON: %q", r.body)
	}
	return er.Error
}

func (r *response) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(r.body), v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

// do sends one request to the env's server with token as bearer ("" for
// none).
func (e *testEnv) do(method, path, token, body string) *response {
	e.t.Helper()
	return doURL(e.t, e.hs.Client(), method, e.hs.URL+path, token, body, nil)
}

func doURL(t *testing.T, c *http.Client, method, url, token, body string, hdr http.Header) *response {
	t.Helper()
	r, err := send(c, method, url, token, body, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// send is doURL for any goroutine.
func send(c *http.Client, method, url, token, body string, hdr http.Header) (*response, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return &response{code: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

// mustJSON encodes v.
func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The fake's census: complete from the start, fed by the server it backs.
func (f *fakeStore) fleet() *census.Fleet {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.census == nil {
		f.census = census.NewFleet(time.Now(), nil, time.Minute)
		f.censusCh = make(chan struct{})
	}
	return f.census
}

func (f *fakeStore) ServerID() string { return "s1" }

func (f *fakeStore) CensusReport(server string, entries []census.Entry) error {
	if !f.leader.Load() {
		return raftregistry.ErrNotLeader
	}
	fl := f.fleet()
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.Report(server, entries, time.Now())
	close(f.censusCh)
	f.censusCh = make(chan struct{})
	return nil
}

func (f *fakeStore) tables() map[string]uint64 {
	return map[string]uint64{
		census.TableServices:   f.st.Index(state.TableServices),
		census.TableContainers: f.st.Index(state.TableContainers),
		census.TableNodes:      f.st.Index(state.TableNodes),
	}
}

func (f *fakeStore) Census() (raftregistry.CensusView, error) {
	if !f.leader.Load() {
		return raftregistry.CensusView{}, raftregistry.ErrNotLeader
	}
	fl := f.fleet()
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	return raftregistry.CensusView{Complete: fl.Complete(now), Watchers: fl.Watchers(now, f.tables()), Changed: f.censusCh}, nil
}

func (f *fakeStore) InForce(index uint64, only ...string) (bool, bool, []census.Lagging, <-chan struct{}, error) {
	if !f.leader.Load() {
		return false, false, nil, nil, raftregistry.ErrNotLeader
	}
	fl := f.fleet()
	f.mu.Lock()
	defer f.mu.Unlock()
	tables := census.Only(f.tables(), only...)
	ok, lag := fl.InForce(index, tables, time.Now())
	return ok, fl.Complete(time.Now()), lag, f.censusCh, nil
}
