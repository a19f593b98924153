package httpd

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/netlimit"
	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/coexist-dev/coexist/raftregistry/census"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Store is what the HTTP API needs of the registry's replicated store
// (raftregistry.Store satisfies it).
type Store interface {
	// Apply proposes cmd through Raft on the leader and waits until it is
	// applied locally. It returns raftregistry.ErrNotLeader on a follower. A
	// command the state store rejected comes back as Result.Err, with a nil
	// error from Apply.
	Apply(ctx context.Context, cmd state.Command) (state.Result, error)
	// State is the local replica, for reads.
	State() *state.Store
	IsLeader() bool
	// Leader is the current leader; ok is false when none is known. HTTPAddr
	// may be "" when the leader has not recorded it yet.
	Leader() (leader api.Leader, ok bool)
	// LastContact is how long ago this server last heard from the leader; 0
	// on the leader.
	LastContact() time.Duration
	// VerifyLeader confirms with a quorum that this server is still the
	// leader (for ?consistent reads); ErrNotLeader if it is not.
	VerifyLeader(ctx context.Context) error
	// Join adds a server (leader only); a no-op when it is already a member
	// with the same address.
	Join(ctx context.Context, req api.JoinRequest) error
	// RemoveServer removes a server from the Raft configuration (leader only).
	RemoveServer(ctx context.Context, id string) error
	Peers() ([]api.Peer, error)
	// Heartbeat renews a node's TTL (leader only); ErrNotFound for an
	// unknown node.
	Heartbeat(nodeID string) error
	// Snapshot is a consistent copy of the state, as state.Snapshot JSON.
	Snapshot(ctx context.Context) (io.ReadCloser, error)
	// Restore replaces the whole state across the cluster (leader only).
	Restore(ctx context.Context, r io.Reader) error
	// ServerID is this server's Raft id.
	ServerID() string
	// CensusReport takes a server's census of its watchers (leader only;
	// ErrNotLeader otherwise).
	CensusReport(server string, entries []census.Entry) error
	// Census is the fleet's census (leader only).
	Census() (raftregistry.CensusView, error)
	// InForce reports whether the change at index is in force (leader
	// only), over the given tables or all that routing reads.
	InForce(index uint64, tables ...string) (ok, complete bool, lagging []census.Lagging, changed <-chan struct{}, err error)
	// CaughtUp reports whether this server's state may answer ?stale
	// reads: it has applied the log it held when it started, or all that
	// the leader has committed.
	CaughtUp() bool
}

// Config configures a Server.
type Config struct {
	// Store is the registry's store. Required.
	Store Store
	// Logger is where the API logs; nil means no logging.
	Logger hclog.Logger
	// ManagementToken, when not empty, is a secret that always has the
	// management role, whatever the token table holds.
	ManagementToken string
	// TLSConfig is the TLS configuration of this server's listener. When set,
	// requests are forwarded to the leader over https with it as the client
	// configuration (RootCAs, falling back to ClientCAs, verify the leader;
	// Certificates are presented as the client certificate).
	TLSConfig *tls.Config
	// CensusTTL is how long a watcher stays in this server's census after
	// its last request; 0 means raftregistry.DefaultCensusTTL.
	CensusTTL time.Duration
	// Registerer receives the API's Prometheus collectors. Nil means a
	// private registry, served at /v1/metrics.
	Registerer prometheus.Registerer
}

// Server is the registry's v1 HTTP API. It is an http.Handler; the caller
// owns the listener.
type Server struct {
	store    Store
	logger   hclog.Logger
	mgmtHash [sha256.Size]byte
	hasMgmt  bool
	// mgmtToken is what a follower reports its census to the leader with.
	mgmtToken string
	census    *localCensus
	scheme    string
	proxy     *httputil.ReverseProxy
	metrics   *metrics
	mux       *http.ServeMux
	cache     answerCache

	// waitHook, when set (by tests), is called each time a blocking query
	// starts to wait.
	waitHook func()
}

// New returns a Server over cfg.Store.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("httpd: Config.Store is required")
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{
		store:  cfg.Store,
		logger: logger,
		scheme: "http",
		mux:    http.NewServeMux(),
	}
	ttl := cfg.CensusTTL
	if ttl <= 0 {
		ttl = raftregistry.DefaultCensusTTL
	}
	s.census = newLocalCensus(ttl)
	if cfg.ManagementToken != "" {
		s.mgmtToken = cfg.ManagementToken
		s.mgmtHash = sha256.Sum256([]byte(cfg.ManagementToken))
		s.hasMgmt = true
	}
	if cfg.TLSConfig != nil {
		s.scheme = "https"
	}
	s.proxy = s.newProxy(cfg.TLSConfig)
	m, err := newMetrics(cfg.Registerer, cfg.Store)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	s.routes()
	return s, nil
}

// HTTPServer returns the http.Server that answers the API within lim (a
// zero field takes its default, see netlimit.Defaults), and ln bounded by
// lim to serve it on (docs/design.md §5): a head of MaxHeaderBytes at most,
// within HeadTimeout; a body that stalls BodyTimeout closes its connection;
// each write of an answer within WriteTimeout; at most MaxConns connections
// open, a new one over it answered 503 at once (closed without an answer
// when tlsConns: ln's connections carry TLS) and closed.
func (s *Server) HTTPServer(ln net.Listener, lim netlimit.Limits, tlsConns bool) (*http.Server, net.Listener) {
	var reject []byte
	if !tlsConns {
		reject = tooManyConns
	}
	return lim.Server(s), netlimit.Listener(ln, lim, reject)
}

// tooManyConns answers a connection over the cap.
var tooManyConns = func() []byte {
	body := `{"error":"server has too many connections open"}` + "\n"
	return []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// ServeHTTP answers one API request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

// kind says where a request is answered.
type kind uint8

const (
	// kindRead is answered by the leader unless ?stale; it may block.
	kindRead kind = iota
	// kindWrite is answered by the leader only.
	kindWrite
	// kindLeaderRead is answered by the leader only, ?stale or not: what
	// only the leader knows (the fleet's census).
	kindLeaderRead
	// kindLocal is answered by the server it reaches (its own metrics).
	kindLocal
	// kindOpen is answered locally and needs no token.
	kindOpen
)

// bodyMode says what a route does with the request body.
type bodyMode uint8

const (
	bodyNone   bodyMode = iota // ignored
	bodyJSON                   // read whole, up to maxBody, before the handler
	bodyStream                 // read by the handler itself
)

// maxBody caps every JSON request body.
const maxBody = 1 << 20

// handler answers one request after it was authenticated and authorized. It
// returns an error before writing anything, and the caller writes it.
type handler func(w http.ResponseWriter, r *http.Request, c *call) error

// route is one endpoint: its pattern, where it is answered, who may call it.
type route struct {
	method string
	path   string
	kind   kind
	allow  policy
	body   bodyMode
	h      handler
}

// call is what the wrapper learned about a request before its handler runs.
type call struct {
	id   *identity
	q    queryOptions
	body []byte
}

func (s *Server) routes() {
	mgmt := roles(api.RoleManagement)
	oper := roles(api.RoleOperator)
	for _, rt := range []route{
		{"GET", "/v1/services", kindRead, anyToken, bodyNone, s.listServices},
		{"GET", "/v1/services/{service}", kindRead, anyToken, bodyNone, s.getService},
		{"DELETE", "/v1/services/{service}", kindWrite, oper, bodyNone, s.purgeService},
		{"PUT", "/v1/services/{service}/versions/{version}", kindWrite, oper, bodyJSON, s.declareVersion},
		{"DELETE", "/v1/services/{service}/versions/{version}", kindWrite, oper, bodyNone, s.retireVersion},

		{"GET", "/v1/containers", kindRead, anyToken, bodyNone, s.listContainers},
		{"GET", "/v1/containers/{id}", kindRead, anyToken, bodyNone, s.getContainer},
		{"PUT", "/v1/containers/{id}", kindWrite, oper, bodyJSON, s.putContainer},
		{"DELETE", "/v1/containers/{id}", kindWrite, oper, bodyNone, s.deleteContainer},
		{"PUT", "/v1/containers/{id}/status", kindWrite, statusReporter, bodyJSON, s.putContainerStatus},

		{"GET", "/v1/nodes", kindRead, anyToken, bodyNone, s.listNodes},
		{"GET", "/v1/nodes/{id}", kindRead, anyToken, bodyNone, s.getNode},
		{"PUT", "/v1/nodes/{id}", kindWrite, ownNode, bodyJSON, s.registerNode},
		{"PUT", "/v1/nodes/{id}/heartbeat", kindWrite, ownNode, bodyNone, s.heartbeat},
		{"DELETE", "/v1/nodes/{id}", kindWrite, oper, bodyNone, s.purgeNode},

		{"GET", "/v1/route", kindRead, anyToken, bodyNone, s.getRoute},

		{"GET", "/v1/census", kindLeaderRead, anyToken, bodyNone, s.getCensus},
		{"GET", "/v1/census/in-force", kindLeaderRead, anyToken, bodyNone, s.getInForce},
		{"GET", "/v1/census/stranded", kindLeaderRead, anyToken, bodyNone, s.getStranded},
		{"POST", "/v1/census/report", kindWrite, mgmt, bodyJSON, s.postCensusReport},
		{"DELETE", "/v1/census/watchers/{instance}", kindLocal, anyToken, bodyNone, s.deleteCensusWatcher},

		{"GET", "/v1/status/leader", kindOpen, anyToken, bodyNone, s.statusLeader},
		{"GET", "/v1/status/peers", kindOpen, anyToken, bodyNone, s.statusPeers},
		{"POST", "/v1/cluster/join", kindWrite, mgmt, bodyJSON, s.join},
		{"DELETE", "/v1/cluster/peers/{id}", kindWrite, mgmt, bodyNone, s.removePeer},

		{"POST", "/v1/acl/tokens", kindWrite, mgmt, bodyJSON, s.createToken},
		{"GET", "/v1/acl/tokens", kindRead, mgmt, bodyNone, s.listTokens},
		{"DELETE", "/v1/acl/tokens/{accessor_id}", kindWrite, mgmt, bodyNone, s.deleteToken},
		{"GET", "/v1/acl/token/self", kindRead, anyToken, bodyNone, s.tokenSelf},

		{"GET", "/v1/snapshot", kindRead, mgmt, bodyNone, s.saveSnapshot},
		{"PUT", "/v1/snapshot", kindWrite, mgmt, bodyStream, s.restoreSnapshot},

		{"GET", "/v1/metrics", kindLocal, anyToken, bodyNone, s.serveMetrics},
	} {
		s.mux.Handle(rt.method+" "+rt.path, s.wrap(&rt))
	}
	s.mux.HandleFunc("/", s.unmatched)
}

// unmatched answers a request no route matched: 405 when the path exists
// with another method, else 404, both in JSON.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	rec := newRecorder(w)
	start := time.Now()
	defer s.observe(rec, r, "unmatched", start)
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		for _, m := range allow {
			rec.Header().Add("Allow", m)
		}
		s.writeError(rec, r, httpErrorf(http.StatusMethodNotAllowed, "method %s not allowed on %s", r.Method, r.URL.Path))
		return
	}
	s.writeError(rec, r, httpErrorf(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
}

// wrap turns a route into an http.Handler: metrics, token, forwarding to
// the leader, authorization, body, then the handler.
func (s *Server) wrap(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := newRecorder(w)
		start := time.Now()
		defer s.observe(rec, r, rt.path, start)
		if err := s.dispatch(rec, r, rt); err != nil {
			if rec.wrote {
				// The answer has started; all that is left is to say so.
				s.logger.Error("request failed after its answer started", "method", r.Method, "path", r.URL.Path, "error", err)
				return
			}
			s.writeError(rec, r, err)
		}
	})
}

func (s *Server) dispatch(w *recorder, r *http.Request, rt *route) error {
	c := &call{}
	if rt.kind == kindOpen {
		return rt.h(w, r, c)
	}
	secret, err := bearer(r)
	if err != nil {
		return err
	}
	if rt.kind == kindRead {
		if c.q, err = parseQuery(r); err != nil {
			return err
		}
	}
	// A follower forwards before it resolves the token: the leader's token
	// table is the newest, so a token created a moment ago works everywhere.
	if s.needsLeader(rt, c) && !s.store.IsLeader() {
		return s.forward(w, r)
	}
	if c.id, err = s.authenticate(secret); err != nil {
		return err
	}
	if err := rt.allow(c.id, r); err != nil {
		return err
	}
	if rt.body == bodyJSON {
		if c.body, err = readBody(w.ResponseWriter, r); err != nil {
			return err
		}
	}
	if c.q.consistent {
		err = s.store.VerifyLeader(r.Context())
	}
	if err == nil {
		err = rt.h(w, r, c)
	}
	if errors.Is(err, errNotLeader) && !w.wrote && rt.kind == kindRead && !c.q.stale {
		// Leadership moved between the check above and the read: ask the
		// new leader. A write is not sent again: ErrNotLeader may also mean
		// leadership was lost after the command was proposed, so it may
		// have been applied; the caller gets a 503 and decides.
		return s.forward(w, r)
	}
	return err
}

// needsLeader reports whether the request must be answered by the leader.
func (s *Server) needsLeader(rt *route, c *call) bool {
	switch rt.kind {
	case kindWrite, kindLeaderRead:
		return true
	case kindRead:
		// A server that restarted answers ?stale only once it has applied
		// the log it had: before that its state is empty or old, and a
		// watcher would take that for the truth.
		return !c.q.stale || !s.store.CaughtUp()
	}
	return false
}
