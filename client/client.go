package client

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

// HeaderClientRequire carries the caller's own constraint on the version of
// the service it calls (Config.Requires), so that a gateway re-checking the
// container the SDK named can apply the same rule the SDK applied.
const HeaderClientRequire = api.HeaderClientRequire

// Client routes calls to services. It is safe for concurrent use. Build it
// with New and Close it when done.
type Client struct {
	cfg    Config
	logger hclog.Logger
	api    *api.Client
	ident  routing.Client
	rnd    routing.Rand

	base     http.RoundTripper // to the gateways
	ownsBase bool
	rt       *transport
	http     *http.Client

	// Header values, built once and shared by every call: net/http only
	// reads them.
	hdrClient, hdrVersion []string
	hdrRequire            map[string][]string // service -> constraint

	// state is what every call reads: one load, no lock.
	state  atomic.Pointer[tableState]
	closed atomic.Bool

	// mu guards the last answer of each watch; only the watch goroutines
	// take it, for as long as a table takes to build.
	mu         sync.Mutex
	services   []api.Service
	containers []api.Container
	nodes      []api.Node
	loaded     [api.NumFleetTables]bool

	started time.Time
	watches [api.NumFleetTables]watchState
	errMu   sync.Mutex
	lastErr error

	ready     chan struct{}
	readyOnce sync.Once
	fatal     chan error

	cancel context.CancelFunc
	wg     sync.WaitGroup

	metrics *metrics

	// ident says who this process is on every watch (docs/design.md §5).
	watcher *api.Identity
	// calls are the services this process has routed to, copied on write;
	// callsGrew is closed (and replaced) when one is added, under callsMu.
	calls     atomic.Pointer[map[string]struct{}]
	callsMu   sync.Mutex
	callsGrew chan struct{}
}

// tableState is one route table and what calls derive from it, immutable.
type tableState struct {
	t *routing.Table
	// services are the names of the services in t.
	services map[string]struct{}
	// container maps a container id to the value of Coexist-Container.
	container map[string][]string
	builtAt   time.Time
}

// watchState is how one watch last fared, for Staleness.
type watchState struct {
	lastOK      atomic.Int64 // unix nanoseconds of the last answer; 0: none yet
	lastContact atomic.Int64 // how far behind the leader that answer was
	failing     atomic.Bool  // a query failed since the last answer
}

// New starts a client: it parses the client's identity, starts watching
// services, containers and nodes, and returns once the first route table is
// loaded. It fails when cfg is invalid, when the registry refuses the token,
// or when no table loaded within cfg.InitialTimeout or before ctx ended; ctx
// bounds only that wait, not the client's life.
func New(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Name == "" {
		return nil, errors.New("client: Config.Name is required")
	}
	if cfg.Version == "" {
		return nil, errors.New("client: Config.Version is required")
	}
	if err := api.CheckVersion(cfg.Version); err != nil {
		return nil, fmt.Errorf("client: Config.Version: %w", err)
	}
	for _, svc := range slices.Sorted(maps.Keys(cfg.Requires)) {
		if err := api.CheckRange(cfg.Requires[svc]); err != nil {
			return nil, fmt.Errorf("client: Config.Requires[%s]: %w", svc, err)
		}
	}
	ident, err := routing.ParseClient(cfg.Name, cfg.Version, cfg.Requires, cfg.Node)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	cfg.setDefaults()
	ac, err := cfg.apiClient()
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		cfg:        cfg,
		logger:     cfg.Logger.Named("client"),
		api:        ac,
		ident:      ident,
		rnd:        cfg.Rand,
		base:       cfg.HTTPTransport,
		hdrClient:  []string{cfg.Name},
		hdrVersion: []string{cfg.Version},
		started:    time.Now(),
		ready:      make(chan struct{}),
		fatal:      make(chan error, 1),
	}
	if c.base == nil {
		c.base, c.ownsBase = DefaultTransport(), true
	}
	if len(cfg.Requires) > 0 {
		c.hdrRequire = make(map[string][]string, len(cfg.Requires))
		for svc, cons := range cfg.Requires {
			c.hdrRequire[svc] = []string{cons}
		}
	}
	c.watcher = &api.Identity{Instance: api.NewInstanceID(), Client: cfg.Name, ClientVersion: cfg.Version,
		Requires: cfg.Requires, Calls: c.callList}
	c.calls.Store(&map[string]struct{}{})
	c.callsGrew = make(chan struct{})
	c.rt = &transport{c: c}
	c.http = &http.Client{Transport: c.rt}
	c.metrics = newMetrics(cfg.Name, cfg.Version, c.Staleness)
	c.state.Store(&tableState{t: routing.NewTable(nil, nil, nil)})

	wctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.startWatches(wctx)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.monitorStaleness(wctx)
	}()

	timer := time.NewTimer(cfg.InitialTimeout)
	defer timer.Stop()
	select {
	case <-c.ready:
		c.logger.Debug("route table loaded", "client", cfg.Name+"@"+cfg.Version, "registry", ac.Address())
		return c, nil
	case err := <-c.fatal:
		c.Close()
		return nil, fmt.Errorf("client: load route table from %s: %w", ac.Address(), err)
	case <-timer.C:
		c.Close()
		return nil, fmt.Errorf("client: %w from %s within %s: %s", ErrNoTable, ac.Address(), cfg.InitialTimeout, c.lastError())
	case <-ctx.Done():
		c.Close()
		return nil, fmt.Errorf("client: %w from %s: %w (%s)", ErrNoTable, ac.Address(), ctx.Err(), c.lastError())
	}
}

// Close stops the watches. Calls made afterwards fail with ErrClosed.
func (c *Client) Close() {
	if c.closed.Swap(true) {
		return
	}
	c.cancel()
	c.wg.Wait()
	// Leave the registry's census at once: a closed client must not count
	// as a live caller (refusing a retire it no longer needs) for census_ttl.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	if err := c.api.Census().Leave(ctx, c.watcher); err != nil {
		c.logger.Debug("leave the registry's census", "error", err)
	}
	cancel()
	if t, ok := c.base.(*http.Transport); ok && c.ownsBase {
		t.CloseIdleConnections()
	}
}

// Transport returns the client's http.RoundTripper: a request to
// http://{service}/path goes to the gateway of a node holding the container
// chosen for this client, as /{service}/path.
func (c *Client) Transport() http.RoundTripper { return c.rt }

// HTTPClient returns an http.Client whose transport is Transport(). It has
// no timeout of its own: give requests a context with a deadline, which also
// bounds their retries.
func (c *Client) HTTPClient() *http.Client { return c.http }

// Collectors returns the client's Prometheus metrics, for the caller to
// register: calls, failures and retries by service and served version, call
// durations, and the age of the route table.
func (c *Client) Collectors() []prometheus.Collector { return c.metrics.collectors() }

// Staleness is the age of the route table: zero, or how far behind the
// leader the answering registry server was, while every watch is answered;
// once a watch fails, the time since its last answer. Before the first table
// it is the time since New.
func (c *Client) Staleness() time.Duration {
	now := time.Now()
	var worst time.Duration
	for i := range c.watches {
		w := &c.watches[i]
		ok := w.lastOK.Load()
		lc := time.Duration(w.lastContact.Load())
		var age time.Duration
		switch {
		case ok == 0:
			age = now.Sub(c.started)
		case w.failing.Load():
			age = now.Sub(time.Unix(0, ok)) + lc
		default:
			age = lc
		}
		worst = max(worst, age)
	}
	return worst
}

func (c *Client) startWatches(ctx context.Context) {
	cfg := api.FleetConfig{
		Watch: api.WatchConfig{
			WaitTime:   c.cfg.WatchWait,
			AllowStale: true,
			MinBackoff: watchMinBackoff,
			MaxBackoff: watchMaxBackoff,
		},
		// A blocking query answers within its wait plus the server's jitter
		// (a sixteenth); past that, plus a margin, the server is not
		// answering.
		QueryTimeout: c.cfg.WatchWait + c.cfg.WatchWait/16 + 10*time.Second,
		// Every watch says who asks, for the registry's census; the
		// services watch asks again at once, with the same index, when the
		// process starts calling a service it had not called (the census
		// learns it from Coexist-Calls; docs/design.md §5).
		Prepare: func(_ api.FleetTable, q *api.QueryOptions) { q.Identity = c.watcher },
		Ask: func(t api.FleetTable) <-chan struct{} {
			if t != api.FleetServices {
				return nil
			}
			c.callsMu.Lock()
			defer c.callsMu.Unlock()
			return c.callsGrew
		},
		OnAnswer: func(t api.FleetTable, meta *api.QueryMeta) {
			w := &c.watches[t]
			w.lastContact.Store(int64(meta.LastContact))
			w.lastOK.Store(time.Now().UnixNano())
			if w.failing.Swap(false) {
				c.logger.Info("registry watch resumed", "watch", t.String())
			}
		},
		OnError: func(t api.FleetTable, err error, pause time.Duration) {
			c.setLastError(fmt.Errorf("watch %s: %w", t, err))
			if !c.watches[t].failing.Swap(true) {
				c.logger.Warn("registry watch failed; routing from the last route table", "watch", t.String(), "error", err, "retry_in", pause)
			} else {
				c.logger.Debug("registry watch failed", "watch", t.String(), "error", err, "retry_in", pause)
			}
			if api.IsUnauthorized(err) && !c.isReady() {
				select {
				case c.fatal <- err:
				default:
				}
			}
		},
		OnServices:   func(v []api.Service, _ *api.QueryMeta) { c.update(api.FleetServices, func() { c.services = v }) },
		OnContainers: func(v []api.Container, _ *api.QueryMeta) { c.update(api.FleetContainers, func() { c.containers = v }) },
		OnNodes:      func(v []api.Node, _ *api.QueryMeta) { c.update(api.FleetNodes, func() { c.nodes = v }) },
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		api.WatchFleet(ctx, c.api, cfg)
	}()
}

// update stores a watch's answer and, once every table answered, builds and
// publishes a new route table.
func (c *Client) update(which api.FleetTable, set func()) {
	c.mu.Lock()
	set()
	c.loaded[which] = true
	built := false
	if c.loaded[api.FleetServices] && c.loaded[api.FleetContainers] && c.loaded[api.FleetNodes] {
		c.state.Store(c.buildLocked())
		built = true
	}
	c.mu.Unlock()
	if built {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

func (c *Client) buildLocked() *tableState {
	prev := c.state.Load()
	st := &tableState{
		t:         routing.NewTable(c.services, c.containers, c.nodes),
		services:  make(map[string]struct{}, len(c.services)),
		container: make(map[string][]string, len(c.containers)),
		builtAt:   time.Now(),
	}
	for _, s := range c.services {
		st.services[s.Name] = struct{}{}
	}
	for i := range c.containers {
		id := c.containers[i].ID
		if v, ok := prev.container[id]; ok {
			st.container[id] = v
		} else {
			st.container[id] = []string{id}
		}
	}
	return st
}

func (c *Client) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

func (c *Client) setLastError(err error) {
	c.errMu.Lock()
	c.lastErr = err
	c.errMu.Unlock()
}

func (c *Client) lastError() string {
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.lastErr == nil {
		return "no answer yet"
	}
	return "last error: " + c.lastErr.Error()
}

// monitorStaleness logs when the table's age crosses StaleThreshold, and
// when it comes back under it.
func (c *Client) monitorStaleness(ctx context.Context) {
	period := min(max(c.cfg.StaleThreshold/4, 10*time.Millisecond), time.Second)
	t := time.NewTicker(period)
	defer t.Stop()
	stale := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.isReady() {
			continue
		}
		age := c.Staleness()
		switch {
		case !stale && age >= c.cfg.StaleThreshold:
			stale = true
			c.logger.Warn("route table is stale: the registry has not answered; calls are routed from the last table",
				"age", age.Round(time.Millisecond), "threshold", c.cfg.StaleThreshold, "error", c.lastError())
		case stale && age < c.cfg.StaleThreshold:
			stale = false
			c.logger.Info("route table is current again", "age", age.Round(time.Millisecond))
		}
	}
}

// callList returns the services this process has routed to.
func (c *Client) callList() []string {
	m := *c.calls.Load()
	out := make([]string, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	return out
}

// noteCall records that the process routes to service; the hot path is one
// atomic load and a map read.
func (c *Client) noteCall(service string) {
	if _, ok := (*c.calls.Load())[service]; ok {
		return
	}
	c.callsMu.Lock()
	defer c.callsMu.Unlock()
	old := *c.calls.Load()
	if _, ok := old[service]; ok {
		return
	}
	m := make(map[string]struct{}, len(old)+1)
	for k := range old {
		m[k] = struct{}{}
	}
	m[service] = struct{}{}
	c.calls.Store(&m)
	close(c.callsGrew)
	c.callsGrew = make(chan struct{})
}
