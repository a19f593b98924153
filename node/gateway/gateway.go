package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/netlimit"
	"github.com/coexist-dev/coexist/node/gateway/admit"
	"github.com/coexist-dev/coexist/node/inflight"
	"github.com/coexist-dev/coexist/routing"
)

// MetricsPath is the gateway's own path: GET answers its Prometheus metrics.
// Only this exact path is reserved; a service named "v1" is still called at
// every other /v1/... path, or by Host.
const MetricsPath = "/v1/metrics"

// LogsPathPrefix starts the path of the agent's logs endpoint, which the
// gateway serves by GatewayConfig.Logs: LogsPathPrefix + "{id}/logs". A
// service named "v1" cannot be called through the gateway at paths under it.
const LogsPathPrefix = "/v1/containers/"

// AnonymousClient is the client name of a call without Coexist-Client.
const AnonymousClient = "anonymous"

// statusClientGone is what a call whose caller went away is counted as
// (nginx's "client closed request"); nobody is left to read it.
const statusClientGone = 499

// maxCachedClients bounds the cache of parsed callers; when it is full it is
// emptied and fills again with the callers still calling. With every key
// field at most maxClientHeader bytes (the service is one of the table's),
// the cache holds at most a few MiB.
const maxCachedClients = 4096

// maxClientHeader is the longest value of a header that names the caller or
// the container it chose (Coexist-Client, Coexist-Client-Version,
// Coexist-Client-Require, Coexist-Container, Coexist-Hops): a longer one is
// refused with 400, so that what the gateway keeps of callers stays small.
const maxClientHeader = 128

// Engine is how Serve speaks HTTP/1.1 to its callers (see DESIGN.md in this
// directory).
type Engine string

// The engines.
const (
	// EngineFast is the gateway's own HTTP/1.1 for the calls a service
	// client makes, handing every other connection to net/http (see Serve).
	EngineFast Engine = "fast"
	// EngineStd is net/http for every connection: ServeHTTP and
	// httputil.ReverseProxy answer every call.
	EngineStd Engine = "std"
)

// ParseEngine returns the engine named s: "fast" or "std".
func ParseEngine(s string) (Engine, error) {
	switch e := Engine(s); e {
	case EngineFast, EngineStd:
		return e, nil
	}
	return "", fmt.Errorf("engine %q: want %q or %q", s, EngineFast, EngineStd)
}

// ErrUnauthorized is what a GatewayConfig.Authorize returns for a token it
// does not admit: the gateway answers 401.
var ErrUnauthorized = errors.New("unauthorized")

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// NodeID is this node's id: a route whose primary container is on it is
	// served here, any other is forwarded to the node that holds it.
	NodeID string
	// Table returns the gateway's current routing table (the agent rebuilds
	// it on every registry change and local change, with this node's
	// containers overlaid by the agent's fresher local state). It is called
	// once per call, twice for a call to a local container (see Gateway),
	// and must be cheap; it must never return nil.
	Table func() *routing.Table
	// Inflight counts the calls to local containers; nil: a new one.
	Inflight *inflight.Counts
	Logger   hclog.Logger
	// Registerer receives the gateway's metrics; nil: a private registry.
	// Metrics serves Registerer when it is also a prometheus.Gatherer, and
	// the gateway's own metrics otherwise.
	Registerer prometheus.Registerer
	// Rand draws the power-of-two choice; nil: math/rand/v2's top-level
	// functions, which are safe for concurrent use.
	Rand routing.Rand
	// Transport carries the calls ServeHTTP forwards to containers and to
	// other gateways; nil: a transport tuned for many calls to few loopback
	// hosts. The calls Serve answers itself go over its own connections.
	Transport http.RoundTripper
	// Ready tells whether the gateway may route calls; until it does, every
	// call but one to /v1/metrics is refused as safe to retry. The agent
	// makes its gateway ready once it has its first complete view of the
	// registry. nil: always ready.
	Ready func() bool
	// Authorize admits a call to /v1/metrics by the secret of its
	// Authorization: Bearer header ("" when it has none): nil admits it, an
	// error wrapping ErrUnauthorized refuses it with 401, any other error
	// with 503. The agent admits the tokens the registry knows, of any role,
	// as the registry's own /v1/metrics does (docs/design.md §5). nil: the
	// gateway's listener does not serve /v1/metrics (Metrics still returns
	// the handler, for a listener of the caller's).
	Authorize func(ctx context.Context, secret string) error
	// Logs, when set, answers the calls under LogsPathPrefix: the agent's
	// endpoint of its containers' output, which checks its own tokens.
	Logs http.Handler
	// Limits bound what callers may hold of the listeners of Serve, and of
	// the calls ServeHTTP answers (their body progress); a zero field takes
	// its default (netlimit.Defaults).
	Limits netlimit.Limits
	// Engine is how Serve answers calls; "": EngineFast.
	Engine Engine
}

// Gateway is a node's HTTP entry point (docs/design.md §4, §6): every call to a
// service on the node enters through it, so that the node counts in-flight
// calls and drains honestly.
//
// A call names its service by the first segment of its path (/{service}/...)
// or, when that segment is not a service of the table and the Host header's
// host is, by Host; the container always receives the path /{service}/...,
// prefixed with /{service} when the call was routed by Host. The caller is
// named by Coexist-Client (default "anonymous") and Coexist-Client-Version
// (required). routing.Admit decides, with the caller's own node being this
// one; the chosen container is served here when it is local, or the call is
// forwarded once to the gateway of its node with Coexist-Container and
// Coexist-Hops: 1. A call that already carries Coexist-Hops (other than "0")
// is never forwarded again.
//
// A call to a local container is counted in Inflight from before the table is
// read a second time until its answer is copied: if the table changed in
// between and no longer admits the container, the call is refused as safe to
// retry. An agent that publishes a table without a container before it reads
// that container's in-flight count to end a drain therefore never stops a
// container under a call the gateway let through.
//
// Answers: 400 for a missing or bad client version; 404 for an unknown
// service or a client no version serves; 503 with Coexist-Retry: safe for
// every refusal that never reached a service (a stale or draining container,
// a named container when no version serves the client any more, a second
// hop, a container or gateway that could not be dialled); 502 when
// the call failed after it may have reached the service. Errors are JSON,
// {"error": "..."}. A served answer carries Coexist-Served-By:
// service@version container-id.
type Gateway struct {
	cfg       GatewayConfig
	logger    hclog.Logger
	rnd       routing.Rand
	transport http.RoundTripper
	inflight  *inflight.Counts
	metrics   http.Handler
	errorLog  *log.Logger
	buffers   bufferPool
	calls     sync.Pool // *call

	table atomic.Pointer[tableCache]
	srv   gwServer

	clientsMu sync.RWMutex
	clients   map[clientKey]parsedClient

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refused  *prometheus.CounterVec
	handed   prometheus.Counter
	// refusedConns counts the connections refused over Limits.MaxConns.
	refusedConns prometheus.Counter
}

// NewGateway checks cfg and builds a Gateway.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("gateway: node id must not be empty")
	}
	if cfg.Table == nil {
		return nil, errors.New("gateway: table func must not be nil")
	}
	if cfg.Inflight == nil {
		cfg.Inflight = inflight.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Rand == nil {
		cfg.Rand = globalRand{}
	}
	if cfg.Transport == nil {
		cfg.Transport = defaultTransport()
	}
	cfg.Limits = cfg.Limits.WithDefaults()
	if cfg.Engine == "" {
		cfg.Engine = EngineFast
	}
	if _, err := ParseEngine(string(cfg.Engine)); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{
		cfg:       cfg,
		logger:    cfg.Logger,
		rnd:       cfg.Rand,
		transport: cfg.Transport,
		inflight:  cfg.Inflight,
		clients:   make(map[clientKey]parsedClient),
		// Labels take values from fixed sets, or as the registry declares
		// them: never a caller's own words (docs/design.md §5).
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coexist_gateway_requests_total",
			Help: "Calls answered by the gateway, by service and version served (as declared; \"\" for none) and status class (2xx, 4xx, 499 for a caller gone, ...).",
		}, []string{"service", "version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coexist_gateway_request_duration_seconds",
			Help:    "Duration of the calls the gateway forwarded, answer body included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "version"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coexist_gateway_refused_total",
			Help: "Calls the gateway refused, by service and reason.",
		}, []string{"service", "reason"}),
		handed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coexist_gateway_connections_handed_over_total",
			Help: "Connections Serve handed to net/http for a call it does not answer itself (see Gateway.Serve); every connection with the std engine.",
		}),
		refusedConns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coexist_gateway_connections_refused_total",
			Help: "Connections Serve refused at once because its listener had its most connections open.",
		}),
	}
	// ReverseProxy logs only what it cannot report otherwise, such as an
	// answer cut short by the caller going away: detail, not errors.
	g.errorLog = cfg.Logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})
	g.calls.New = func() any { return g.newCall() }
	collectors := []prometheus.Collector{g.requests, g.duration, g.refused, g.handed, g.refusedConns, &inflightCollector{
		f: g.inflight,
		desc: prometheus.NewDesc("coexist_gateway_inflight",
			"Calls in flight to each local container.", []string{"container"}, nil),
	}}
	own := prometheus.NewRegistry()
	for _, c := range collectors {
		if err := own.Register(c); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
		if cfg.Registerer != nil {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("gateway: register metrics: %w", err)
			}
		}
	}
	var gatherer prometheus.Gatherer = own
	if ga, ok := cfg.Registerer.(prometheus.Gatherer); ok {
		gatherer = ga
	}
	g.metrics = promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
	return g, nil
}

// Metrics returns the handler of the gateway's Prometheus metrics, which
// ServeHTTP also serves at GET /v1/metrics.
func (g *Gateway) Metrics() http.Handler { return g.metrics }

// ServeHTTP routes one call. Serve answers most calls without it, on its own
// HTTP/1.1 connections; ServeHTTP answers the rest (see Serve), and serves
// the gateway when it is mounted in an http.Server of the caller's.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == MetricsPath {
		g.serveMetrics(w, r)
		return
	}
	if g.cfg.Logs != nil && strings.HasPrefix(r.URL.Path, LogsPathPrefix) {
		g.cfg.Logs.ServeHTTP(w, r)
		return
	}
	// A body that stalls does not hold the connection (docs/design.md §5).
	netlimit.ProgressBody(w, r, g.cfg.Limits.BodyTimeout)
	h := callHead{
		path:          r.URL.Path,
		host:          r.Host,
		client:        header(r.Header, api.HeaderClient),
		clientVersion: header(r.Header, api.HeaderClientVersion),
		require:       header(r.Header, api.HeaderClientRequire),
		container:     header(r.Header, api.HeaderContainer),
		hops:          header(r.Header, api.HeaderHops),
	}
	var rt route
	if ref := g.decide(&h, &rt); ref != nil {
		g.refuse(w, ref)
		return
	}
	defer rt.ic.End()
	g.forward(w, r, &rt)
}

// callHead is what the gateway reads of a call to route it.
type callHead struct {
	path string // the request's path, decoded
	host string // the Host header
	// The values of the api.Header* headers of the same names: the first
	// value of each, "" when absent.
	client, clientVersion, require, container, hops string
}

// checkLengths refuses a head with a caller's header longer than
// maxClientHeader.
func (h *callHead) checkLengths() error {
	for _, f := range [...]struct {
		name, value string
	}{
		{api.HeaderClient, h.client},
		{api.HeaderClientVersion, h.clientVersion},
		{api.HeaderClientRequire, h.require},
		{api.HeaderContainer, h.container},
		{api.HeaderHops, h.hops},
	} {
		if len(f.value) > maxClientHeader {
			return fmt.Errorf("header %s: %d bytes, longer than %d", f.name, len(f.value), maxClientHeader)
		}
	}
	return nil
}

// route is where decide sends a call.
type route struct {
	start, end time.Time // end: when the answer was copied, if known
	ti         *targetInfo
	tgt        routing.Target
	addr       string        // the container's endpoint, or the gateway of its node
	prefix     string        // "/{service}" when the call named its service by Host
	remote     bool          // addr is another node's gateway
	ic         inflight.Call // the call counted in flight, when local
}

// decide routes a call (docs/design.md §4): it fills rt and returns nil, or
// returns why the call is refused. A call to a local container is counted in
// flight in rt.ic from before the table is read a second time (see Gateway);
// the caller ends rt.ic once the answer is copied.
func (g *Gateway) decide(h *callHead, rt *route) *admit.Refusal {
	rt.start = time.Now()
	if g.cfg.Ready != nil && !g.cfg.Ready() {
		return admit.NotReady()
	}
	tc := g.currentTable()
	service, byHost := tc.serviceOf(h.path, h.host)
	if err := h.checkLengths(); err != nil {
		label := service
		if !tc.has(service) {
			label = ""
		}
		return &admit.Refusal{Code: http.StatusBadRequest, Service: label, Reason: admit.ReasonBadRequest, Err: err}
	}
	if service == "" {
		err := fmt.Errorf("%w: the call names none (path /{service}/... or Host: {service})", routing.ErrUnknownService)
		return &admit.Refusal{Code: http.StatusNotFound, Reason: admit.ReasonUnknownService, Err: err}
	}

	client, err := g.client(h.client, h.clientVersion, service, h.require)
	if err != nil {
		label := service
		if !tc.has(service) {
			label = ""
		}
		return &admit.Refusal{Code: http.StatusBadRequest, Service: label, Reason: admit.ReasonBadRequest, Err: err}
	}

	v := admit.Decide(tc.t, admit.Call{Client: client, Service: service, Container: h.container, Hops: h.hops, Node: g.cfg.NodeID}, g.rnd)
	if v.Refusal != nil {
		return v.Refusal
	}
	tgt := v.Route.Primary()
	ti := tc.target(g, v.Route.Service, v.Route.Version, tgt.ID)
	rt.ti, rt.tgt = ti, tgt
	if byHost {
		rt.prefix = "/" + service
	}
	if v.Remote {
		rt.addr, rt.remote = tgt.Gateway, true
		return g.checkAddr(rt)
	}

	rt.ic = g.inflight.Begin(tgt.ID, ti.versionKey)
	// Counted first, then read again: see Gateway.
	if t := g.cfg.Table(); t != tc.t {
		d, now, _ := routing.Admit(t, client, service, tgt.ID, nil)
		if d != routing.DecisionForward || now.Primary().ID != tgt.ID {
			rt.ic.End()
			rt.ic = inflight.Call{}
			err := fmt.Errorf("%w: container %q stopped admitting calls for %s", routing.ErrStaleContainer, tgt.ID, ti.versionKey)
			return &admit.Refusal{Code: http.StatusServiceUnavailable, Service: service,
				Reason: admit.ReasonRetry, Retry: true, Err: err}
		}
	}
	rt.addr = tgt.Endpoint
	if ref := g.checkAddr(rt); ref != nil {
		rt.ic.End()
		rt.ic = inflight.Call{}
		return ref
	}
	return nil
}

// checkAddr refuses a route with no address to send the call to.
func (g *Gateway) checkAddr(rt *route) *admit.Refusal {
	if rt.addr != "" {
		return nil
	}
	what := "endpoint"
	if rt.remote {
		what = "gateway of node " + rt.tgt.Node
	}
	return &admit.Refusal{Code: http.StatusServiceUnavailable, Service: rt.ti.service,
		Reason: admit.ReasonUnreachable, Retry: true,
		Err: fmt.Errorf("container %q of %s has no known %s", rt.tgt.ID, rt.ti.versionKey, what)}
}

// finish counts a forwarded call once its answer is copied, or failed.
func (g *Gateway) finish(rt *route, code int, unreachable bool) {
	end := rt.end
	if end.IsZero() {
		end = time.Now()
	}
	rt.ti.duration.Observe(end.Sub(rt.start).Seconds())
	rt.ti.requests(g, code).Inc()
	if unreachable {
		g.refused.WithLabelValues(rt.ti.service, admit.ReasonUnreachable).Inc()
	}
}

// serveMetrics answers GET /v1/metrics to a caller cfg.Authorize admits.
func (g *Gateway) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if g.cfg.Authorize == nil {
		WriteError(w, http.StatusNotFound, false, MetricsPath+" is not served on this listener")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		WriteError(w, http.StatusMethodNotAllowed, false, "method "+r.Method+" not allowed on "+MetricsPath)
		return
	}
	secret, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if err := g.cfg.Authorize(r.Context(), secret); err != nil {
		if errors.Is(err, ErrUnauthorized) {
			w.Header().Set("WWW-Authenticate", "Bearer")
			WriteError(w, http.StatusUnauthorized, false, MetricsPath+" needs a registry token: send Authorization: Bearer <token>")
			return
		}
		g.logger.Warn("metrics token not checked", "error", err)
		WriteError(w, http.StatusServiceUnavailable, false, MetricsPath+": the token could not be checked now")
		return
	}
	g.metrics.ServeHTTP(w, r)
}

// forward proxies the call with ReverseProxy and the configured transport.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, rt *route) {
	c := g.calls.Get().(*call)
	c.rt, c.code = rt, 0
	defer func() {
		code := c.code
		if code == 0 {
			// The proxy neither got an answer nor failed: the answer's
			// copy panicked (http.ErrAbortHandler) before any header.
			code = http.StatusBadGateway
		}
		g.finish(rt, code, c.unreachable)
		c.rt, c.unreachable = nil, false
		g.calls.Put(c)
	}()
	c.proxy.ServeHTTP(w, r)
}

// refuse answers a call that reached no service.
func (g *Gateway) refuse(w http.ResponseWriter, ref *admit.Refusal) {
	g.countRefusal(ref)
	WriteError(w, ref.Code, ref.Retry, ref.Err.Error())
}

// countRefusal logs and counts a refusal.
func (g *Gateway) countRefusal(ref *admit.Refusal) {
	g.logger.Debug("call refused", "service", ref.Service, "reason", ref.Reason, "code", ref.Code, "error", ref.Err)
	g.refused.WithLabelValues(ref.Service, ref.Reason).Inc()
	g.requests.WithLabelValues(ref.Service, "", statusClass(ref.Code)).Inc()
}

// client returns the parsed caller, from the cache when it was seen before.
// The SDK enforces a client's own requirements by naming a container, so a
// call carries none.
func (g *Gateway) client(name, ver, service, require string) (routing.Client, error) {
	if name == "" {
		name = AnonymousClient
	}
	if ver == "" {
		return routing.Client{}, fmt.Errorf("missing header %s", api.HeaderClientVersion)
	}
	k := clientKey{name: name, version: ver, service: service, require: require}
	g.clientsMu.RLock()
	p, ok := g.clients[k]
	g.clientsMu.RUnlock()
	if !ok {
		var reqs map[string]string
		if require != "" {
			reqs = map[string]string{service: require}
		}
		if err := api.CheckVersion(ver); err != nil {
			p.err = fmt.Errorf("header %s: %w", api.HeaderClientVersion, err)
		} else if p.c, p.err = routing.ParseClient(name, ver, reqs, g.cfg.NodeID); p.err != nil {
			p.err = fmt.Errorf("headers %s, %s: %w", api.HeaderClientVersion, api.HeaderClientRequire, p.err)
		}
		g.clientsMu.Lock()
		if len(g.clients) >= maxCachedClients {
			clear(g.clients)
		}
		g.clients[k] = p
		g.clientsMu.Unlock()
	}
	return p.c, p.err
}

// clientKey names a parsed client: its requirement is the one it sent for
// this call's service.
type clientKey struct{ name, version, service, require string }

type parsedClient struct {
	c   routing.Client
	err error
}

// currentTable returns the table of cfg.Table with what the gateway derives
// from it, derived again when the table changes.
func (g *Gateway) currentTable() *tableCache {
	t := g.cfg.Table()
	if tc := g.table.Load(); tc != nil && tc.t == t {
		return tc
	}
	tc := &tableCache{t: t, services: make(map[string]struct{}), targets: make(map[targetKey]*targetInfo)}
	for _, s := range t.Services() {
		tc.services[s] = struct{}{}
	}
	g.table.Store(tc)
	return tc
}

// tableCache is one routing table and what the gateway derives from it once:
// its service names, and per container served the strings and metrics of
// the calls to it. It is bounded by the table, and dropped with it.
type tableCache struct {
	t        *routing.Table
	services map[string]struct{}

	mu      sync.RWMutex
	targets map[targetKey]*targetInfo
}

type targetKey struct{ service, version, container string }

// targetInfo is what the calls routed to one container for one service
// version share.
type targetInfo struct {
	service, version string
	versionKey       string   // "service@version", the key of Inflight
	servedBy         []string // the value of Coexist-Served-By, read only
	duration         prometheus.Observer

	// The counters of g.requests by status class (statusClasses), made
	// when first used: they spare a call the label hashing and checks of
	// WithLabelValues.
	counters [len(statusClasses)]atomic.Pointer[prometheus.Counter]
}

// requests returns the counter of calls to the target answered with code.
func (ti *targetInfo) requests(g *Gateway, code int) prometheus.Counter {
	i := statusClassIndex(code)
	if c := ti.counters[i].Load(); c != nil {
		return *c
	}
	c := g.requests.WithLabelValues(ti.service, ti.version, statusClasses[i])
	ti.counters[i].Store(&c)
	return c
}

func (tc *tableCache) has(service string) bool {
	_, ok := tc.services[service]
	return ok
}

// serviceOf returns the service a call names and whether it named it by Host.
// When neither the path nor Host names a service of the table, it returns
// the path's first segment, for the error; "" when the path is "/".
func (tc *tableCache) serviceOf(path, host string) (string, bool) {
	seg := firstSegment(path)
	if tc.has(seg) {
		return seg, false
	}
	if h := hostName(host); h != "" && tc.has(h) {
		return h, true
	}
	return seg, false
}

func (tc *tableCache) target(g *Gateway, service, version, container string) *targetInfo {
	k := targetKey{service: service, version: version, container: container}
	tc.mu.RLock()
	ti := tc.targets[k]
	tc.mu.RUnlock()
	if ti != nil {
		return ti
	}
	vk := service + "@" + version
	ti = &targetInfo{
		service:    service,
		version:    version,
		versionKey: vk,
		servedBy:   []string{api.ServedBy{Service: service, Version: version, Container: container}.String()},
		duration:   g.duration.WithLabelValues(service, version),
	}
	tc.mu.Lock()
	if old := tc.targets[k]; old != nil {
		ti = old
	} else {
		tc.targets[k] = ti
	}
	tc.mu.Unlock()
	return ti
}

// call is the state of one call forwarded by ReverseProxy. Calls are pooled,
// each with its own ReverseProxy whose hooks read it, so that a call
// allocates nothing of its own.
type call struct {
	g     *Gateway
	proxy httputil.ReverseProxy
	rt    *route

	code        int  // the status answered
	unreachable bool // the target could not be dialled
}

func (g *Gateway) newCall() *call {
	c := &call{g: g}
	c.proxy = httputil.ReverseProxy{
		Rewrite:        c.rewrite,
		Transport:      g.transport,
		BufferPool:     &g.buffers,
		ModifyResponse: c.modifyResponse,
		ErrorHandler:   c.errorHandler,
		ErrorLog:       g.errorLog,
	}
	return c
}

func (c *call) rewrite(pr *httputil.ProxyRequest) {
	out, rt := pr.Out, c.rt
	out.URL.Scheme = "http"
	out.URL.Host = rt.addr
	if rt.prefix != "" {
		out.URL.Path = rt.prefix + pr.In.URL.Path
		if pr.In.URL.RawPath != "" {
			out.URL.RawPath = rt.prefix + pr.In.URL.RawPath
		}
	}
	// The caller's Host, not the target's: a container or gateway sees the
	// call as it was made.
	out.Host = pr.In.Host
	// Append to X-Forwarded-For as ReverseProxy does with a Director.
	if prior := pr.In.Header["X-Forwarded-For"]; len(prior) > 0 {
		out.Header["X-Forwarded-For"] = prior
	}
	pr.SetXForwarded()
	if rt.remote {
		// Set after the hop-by-hop headers were stripped, so that a caller's
		// Connection header cannot remove them.
		out.Header.Set(api.HeaderContainer, rt.tgt.ID)
		out.Header.Set(api.HeaderHops, "1")
	}
}

func (c *call) modifyResponse(resp *http.Response) error {
	c.code = resp.StatusCode
	if !c.rt.remote {
		// The remote gateway sets it for its own containers, and strips
		// their Coexist-Retry: it is the gateway's word alone
		// (docs/design.md §4), never a container's.
		resp.Header[api.HeaderServedBy] = c.rt.ti.servedBy
		delete(resp.Header, api.HeaderRetry)
	}
	return nil
}

// errorHandler answers a call whose target answered nothing.
func (c *call) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	var msg string
	c.code, c.unreachable, msg = c.g.upstreamFailed(c.rt, err, r.Context().Err() != nil)
	if c.code == statusClientGone {
		w.WriteHeader(statusClientGone)
		return
	}
	WriteError(w, c.code, c.unreachable, msg)
}

// upstreamFailed logs a call whose target answered nothing and returns the
// status to answer it with, whether the target could not be dialled (the
// answer is then safe to retry), and the error message to answer. The
// message names the container, never its address nor anything the
// container sent: those are for the log.
func (g *Gateway) upstreamFailed(rt *route, err error, callerGone bool) (code int, unreachable bool, msg string) {
	what := "container"
	if rt.remote {
		what = "gateway of node " + rt.tgt.Node + " for container"
	}
	switch {
	case callerGone:
		// The caller went away; nobody reads the answer.
		g.logger.Debug("caller went away", "service", rt.ti.versionKey, "container", rt.tgt.ID, "error", err)
		return statusClientGone, false, ""
	case dialFailed(err):
		// The call never reached the service: safe to retry, even when it is
		// not idempotent.
		g.logger.Warn(what+" unreachable", "service", rt.ti.versionKey, "container", rt.tgt.ID, "address", rt.addr, "error", err)
		return http.StatusServiceUnavailable, true,
			fmt.Sprintf("%s %q (%s) unreachable", what, rt.tgt.ID, rt.ti.versionKey)
	default:
		g.logger.Error("call failed", "service", rt.ti.versionKey, "container", rt.tgt.ID, "address", rt.addr, "error", err)
		return http.StatusBadGateway, false,
			fmt.Sprintf("call to %s %q (%s) failed: %s", what, rt.tgt.ID, rt.ti.versionKey, failureOf(err))
	}
}

// failureOf says in a few fixed words what became of a call whose target
// answered nothing usable.
func failureOf(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, errBadAnswer):
		return "malformed answer"
	case errors.Is(err, io.ErrUnexpectedEOF), closedBeforeAnswer(err):
		return "connection closed before a whole answer"
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	default:
		return "no valid answer"
	}
}

// dialFailed tells whether err says that no connection was made, so that no
// byte of the call was sent.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// WriteError answers an error of the gateway's own: JSON {"error": msg}, with
// Coexist-Retry: safe when retry.
func WriteError(w http.ResponseWriter, code int, retry bool, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if retry {
		h.Set(api.HeaderRetry, api.RetrySafe)
	}
	w.WriteHeader(code)
	_, _ = w.Write(errorBody(msg))
}

// errorBody is the JSON body of an error answer.
func errorBody(msg string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // version ranges are full of '<' and '>'
	_ = enc.Encode(api.ErrorResponse{Error: msg})
	return b.Bytes()
}

// header returns the first value of a header whose name is already in
// canonical form, as every api.Header* constant is, without canonicalising
// it again.
func header(h http.Header, canonicalKey string) string {
	if v := h[canonicalKey]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// firstSegment returns "orders" for "/orders/x", "/orders" and "orders".
func firstSegment(path string) string {
	path = strings.TrimPrefix(path, "/")
	if i := strings.IndexByte(path, '/'); i >= 0 {
		return path[:i]
	}
	return path
}

// hostName returns the host of a Host header without its port, in lower
// case.
func hostName(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	for i := 0; i < len(host); i++ {
		if 'A' <= host[i] && host[i] <= 'Z' {
			return strings.ToLower(host)
		}
	}
	return host
}

// statusClasses are the values of the code label: a status class, and 499
// apart (a caller gone is not the service's doing).
var statusClasses = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx", "499", "other"}

// statusClassIndex returns the index in statusClasses of code's class.
func statusClassIndex(code int) int {
	switch {
	case code == statusClientGone:
		return 5
	case 100 <= code && code < 600:
		return code/100 - 1
	default:
		return 6
	}
}

func statusClass(code int) string { return statusClasses[statusClassIndex(code)] }

// globalRand draws from math/rand/v2's top-level functions.
type globalRand struct{}

func (globalRand) IntN(n int) int { return rand.IntN(n) }

// defaultTransport is tuned for a gateway: many calls to few hosts, the
// loopback containers and the other gateways, with no proxy from the
// environment and a dial that fails fast so that the caller retries soon.
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   2 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          0, // no limit but per host
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Pass bodies through as they are: no gzip of the transport's own.
		DisableCompression: true,
	}
}

// bufferPool lends the proxy its copy buffers, which it would otherwise
// allocate for every call. It pools array pointers, so that neither Get nor
// Put allocates.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func (b *bufferPool) Get() []byte {
	if a, ok := b.p.Get().(*[copyBufferSize]byte); ok {
		return a[:]
	}
	return new([copyBufferSize]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}

// inflightCollector exports Inflight as the coexist_gateway_inflight gauge.
type inflightCollector struct {
	f    *inflight.Counts
	desc *prometheus.Desc
}

func (c *inflightCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *inflightCollector) Collect(ch chan<- prometheus.Metric) {
	type entry struct {
		id string
		n  int
	}
	var all []entry
	// Copied out first: sending blocks, and must not hold Inflight's lock.
	c.f.Each(func(id string, n int) { all = append(all, entry{id, n}) })
	for _, e := range all {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(e.n), e.id)
	}
}
