package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

// MetricsPath is the gateway's own path: GET answers its Prometheus metrics.
// Only this exact path is reserved; a service named "v1" is still called at
// every other /v1/... path, or by Host.
const MetricsPath = "/v1/metrics"

// AnonymousClient is the client name of a call without Coexist-Client.
const AnonymousClient = "anonymous"

// Reasons of a refusal, the reason label of coexist_gateway_refused_total.
const (
	reasonRetry          = "retry"
	reasonNoCompatible   = "no_compatible"
	reasonUnknownService = "unknown_service"
	reasonBadRequest     = "bad_request"
	reasonHopLimit       = "hop_limit"
	reasonUnreachable    = "upstream_unreachable"
)

// statusClientGone is what a call whose caller went away is counted as
// (nginx's "client closed request"); nobody is left to read it.
const statusClientGone = 499

// maxCachedClients bounds the cache of parsed callers; when it is full it is
// emptied and fills again with the callers still calling.
const maxCachedClients = 4096

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
	Inflight *Inflight
	Logger   hclog.Logger
	// Registerer receives the gateway's metrics; nil: a private registry.
	// Metrics serves Registerer when it is also a prometheus.Gatherer, and
	// the gateway's own metrics otherwise.
	Registerer prometheus.Registerer
	// Rand draws the power-of-two choice; nil: math/rand/v2's top-level
	// functions, which are safe for concurrent use.
	Rand routing.Rand
	// Transport carries calls to containers and to other gateways; nil: a
	// transport tuned for many calls to few loopback hosts.
	Transport http.RoundTripper
}

// Gateway is a node's HTTP entry point (DESIGN.md §4, §6): every call to a
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
	inflight  *Inflight
	metrics   http.Handler
	errorLog  *log.Logger
	buffers   bufferPool
	calls     sync.Pool // *call

	table atomic.Pointer[tableCache]

	clientsMu sync.RWMutex
	clients   map[clientKey]parsedClient

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	refused  *prometheus.CounterVec
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
		cfg.Inflight = NewInflight()
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
	g := &Gateway{
		cfg:       cfg,
		logger:    cfg.Logger,
		rnd:       cfg.Rand,
		transport: cfg.Transport,
		inflight:  cfg.Inflight,
		clients:   make(map[clientKey]parsedClient),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coexist_gateway_requests_total",
			Help: "Calls answered by the gateway, by service, version served, client version and status code.",
		}, []string{"service", "version", "client_version", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coexist_gateway_request_duration_seconds",
			Help:    "Duration of the calls the gateway forwarded, answer body included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service", "version"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coexist_gateway_refused_total",
			Help: "Calls the gateway refused, by service and reason.",
		}, []string{"service", "reason"}),
	}
	// ReverseProxy logs only what it cannot report otherwise, such as an
	// answer cut short by the caller going away: detail, not errors.
	g.errorLog = cfg.Logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})
	g.calls.New = func() any { return g.newCall() }
	collectors := []prometheus.Collector{g.requests, g.duration, g.refused, &inflightCollector{
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

// ServeHTTP routes one call.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == MetricsPath {
		g.serveMetrics(w, r)
		return
	}
	start := time.Now()
	tc := g.currentTable()
	service, byHost := tc.serviceOf(r)
	if service == "" {
		err := fmt.Errorf("%w: the call names none (path /{service}/... or Host: {service})", routing.ErrUnknownService)
		g.refuse(w, http.StatusNotFound, "", "", reasonUnknownService, false, err)
		return
	}

	clientVersion := header(r.Header, api.HeaderClientVersion)
	client, err := g.client(header(r.Header, api.HeaderClient), clientVersion, service, header(r.Header, api.HeaderClientRequire))
	if err != nil {
		label := service
		if !tc.has(service) {
			label = ""
		}
		g.refuse(w, http.StatusBadRequest, label, "", reasonBadRequest, false, err)
		return
	}

	named := header(r.Header, api.HeaderContainer)
	d, route, err := routing.Admit(tc.t, client, service, named, g.rnd)
	switch d {
	case routing.DecisionForward:
	case routing.DecisionUnknownService:
		// The name comes from the caller: keep it out of the labels.
		g.refuse(w, http.StatusNotFound, "", clientVersion, reasonUnknownService, false, err)
		return
	case routing.DecisionNoCompatible:
		if named != "" {
			// The caller's table (an SDK's, or another gateway's) had a
			// candidate where this one has none: the named container is not
			// the right choice any more, and a fresh choice may find one.
			g.refuse(w, http.StatusServiceUnavailable, service, clientVersion, reasonRetry, true,
				fmt.Errorf("%w: container %q: %w", routing.ErrStaleContainer, named, err))
			return
		}
		g.refuse(w, http.StatusNotFound, service, clientVersion, reasonNoCompatible, false, err)
		return
	default: // routing.DecisionRefuseRetry, and any decision added later
		g.refuse(w, http.StatusServiceUnavailable, service, clientVersion, reasonRetry, true, err)
		return
	}

	tgt := route.Primary()
	ti := tc.target(g, route.Service, route.Version, tgt.ID)
	prefix := ""
	if byHost {
		prefix = "/" + service
	}

	if tgt.Node != g.cfg.NodeID {
		if forwarded(r.Header) {
			err := fmt.Errorf("call already forwarded by a gateway (%s: %s); container %q of %s is on node %q, not %q",
				api.HeaderHops, header(r.Header, api.HeaderHops), tgt.ID, ti.versionKey, tgt.Node, g.cfg.NodeID)
			g.refuse(w, http.StatusServiceUnavailable, service, clientVersion, reasonHopLimit, true, err)
			return
		}
		g.forward(w, r, start, ti, clientVersion, tgt, tgt.Gateway, prefix, true)
		return
	}

	ic := g.inflight.Begin(tgt.ID, ti.versionKey)
	defer ic.End()
	// Counted first, then read again: see Gateway.
	if t := g.cfg.Table(); t != tc.t {
		d, now, _ := routing.Admit(t, client, service, tgt.ID, nil)
		if d != routing.DecisionForward || now.Primary().ID != tgt.ID {
			err := fmt.Errorf("%w: container %q stopped admitting calls for %s", routing.ErrStaleContainer, tgt.ID, ti.versionKey)
			g.refuse(w, http.StatusServiceUnavailable, service, clientVersion, reasonRetry, true, err)
			return
		}
	}
	g.forward(w, r, start, ti, clientVersion, tgt, tgt.Endpoint, prefix, false)
}

func (g *Gateway) serveMetrics(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, false, "method "+r.Method+" not allowed on "+MetricsPath)
		return
	}
	g.metrics.ServeHTTP(w, r)
}

// forward proxies the call to addr: the container's endpoint, or when remote
// the gateway of the container's node.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, start time.Time, ti *targetInfo,
	clientVersion string, tgt routing.Target, addr, prefix string, remote bool) {
	if addr == "" {
		what := "endpoint"
		if remote {
			what = "gateway of node " + tgt.Node
		}
		err := fmt.Errorf("container %q of %s has no known %s", tgt.ID, ti.versionKey, what)
		g.refuse(w, http.StatusServiceUnavailable, ti.service, clientVersion, reasonUnreachable, true, err)
		return
	}
	c := g.calls.Get().(*call)
	c.target, c.prefix, c.code, c.ti = addr, prefix, 0, ti
	c.container, c.remote = tgt.ID, remote
	defer func() {
		code := c.code
		if code == 0 {
			// The proxy neither got an answer nor failed: the answer's
			// copy panicked (http.ErrAbortHandler) before any header.
			code = http.StatusBadGateway
		}
		ti.duration.Observe(time.Since(start).Seconds())
		g.requests.WithLabelValues(ti.service, ti.version, clientVersion, statusText(code)).Inc()
		if c.code == http.StatusServiceUnavailable && c.unreachable {
			g.refused.WithLabelValues(ti.service, reasonUnreachable).Inc()
		}
		c.ti, c.unreachable = nil, false
		g.calls.Put(c)
	}()
	c.proxy.ServeHTTP(w, r)
}

// refuse answers a call that reached no service.
func (g *Gateway) refuse(w http.ResponseWriter, code int, service, clientVersion, reason string, retry bool, err error) {
	g.logger.Debug("call refused", "service", service, "reason", reason, "code", code, "error", err)
	g.refused.WithLabelValues(service, reason).Inc()
	g.requests.WithLabelValues(service, "", clientVersion, statusText(code)).Inc()
	writeError(w, code, retry, err.Error())
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
		p.c, p.err = routing.ParseClient(name, ver, reqs, g.cfg.NodeID)
		if p.err != nil {
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
}

func (tc *tableCache) has(service string) bool {
	_, ok := tc.services[service]
	return ok
}

// serviceOf returns the service a call names and whether it named it by Host.
// When neither the path nor Host names a service of the table, it returns
// the path's first segment, for the error; "" when the path is "/".
func (tc *tableCache) serviceOf(r *http.Request) (string, bool) {
	seg := firstSegment(r.URL.Path)
	if tc.has(seg) {
		return seg, false
	}
	if h := hostName(r.Host); h != "" && tc.has(h) {
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
		servedBy:   []string{vk + " " + container},
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

// call is the state of one forwarded call. Calls are pooled, each with its
// own ReverseProxy whose hooks read it, so that a call allocates nothing of
// its own.
type call struct {
	g         *Gateway
	proxy     httputil.ReverseProxy
	target    string // host:port
	prefix    string // "/{service}" when the call was routed by Host
	container string
	remote    bool // target is another node's gateway
	ti        *targetInfo

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
	out := pr.Out
	out.URL.Scheme = "http"
	out.URL.Host = c.target
	if c.prefix != "" {
		out.URL.Path = c.prefix + pr.In.URL.Path
		if pr.In.URL.RawPath != "" {
			out.URL.RawPath = c.prefix + pr.In.URL.RawPath
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
	if c.remote {
		// Set after the hop-by-hop headers were stripped, so that a caller's
		// Connection header cannot remove them.
		out.Header.Set(api.HeaderContainer, c.container)
		out.Header.Set(api.HeaderHops, "1")
	}
}

func (c *call) modifyResponse(resp *http.Response) error {
	c.code = resp.StatusCode
	if !c.remote {
		// The remote gateway sets it for its own containers.
		resp.Header[api.HeaderServedBy] = c.ti.servedBy
	}
	return nil
}

// errorHandler answers a call whose target answered nothing.
func (c *call) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	g := c.g
	what := "container"
	if c.remote {
		what = "gateway"
	}
	switch {
	case r.Context().Err() != nil:
		// The caller went away; nobody reads the answer.
		c.code = statusClientGone
		g.logger.Debug("caller went away", "service", c.ti.versionKey, "container", c.container, "error", err)
		w.WriteHeader(statusClientGone)
	case dialFailed(err):
		// The call never reached the service: safe to retry, even when it is
		// not idempotent.
		c.code, c.unreachable = http.StatusServiceUnavailable, true
		g.logger.Warn(what+" unreachable", "service", c.ti.versionKey, "container", c.container, "address", c.target, "error", err)
		writeError(w, http.StatusServiceUnavailable, true,
			fmt.Sprintf("%s %s of container %q (%s) unreachable: %v", what, c.target, c.container, c.ti.versionKey, err))
	default:
		c.code = http.StatusBadGateway
		g.logger.Error("call failed", "service", c.ti.versionKey, "container", c.container, "address", c.target, "error", err)
		writeError(w, http.StatusBadGateway, false,
			fmt.Sprintf("call to %s %s of container %q (%s) failed: %v", what, c.target, c.container, c.ti.versionKey, err))
	}
}

// dialFailed tells whether err says that no connection was made, so that no
// byte of the call was sent.
func dialFailed(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// forwarded tells whether a call was already forwarded by a gateway.
func forwarded(h http.Header) bool {
	v := header(h, api.HeaderHops)
	return v != "" && v != "0"
}

func writeError(w http.ResponseWriter, code int, retry bool, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	if retry {
		h.Set(api.HeaderRetry, "safe")
	}
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // version ranges are full of '<' and '>'
	_ = enc.Encode(api.ErrorResponse{Error: msg})
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

// statusTexts holds the code label of every status, so that counting a call
// does not format one.
var statusTexts = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusText(code int) string {
	if 0 <= code && code < len(statusTexts) {
		return statusTexts[code]
	}
	return strconv.Itoa(code)
}

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
	f    *Inflight
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
	c.f.each(func(id string, n int) { all = append(all, entry{id, n}) })
	for _, e := range all {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(e.n), e.id)
	}
}
