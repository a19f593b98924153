package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/netlimit"
	"github.com/coexist-dev/coexist/node/driver"
	"github.com/coexist-dev/coexist/node/gateway"
	"github.com/coexist-dev/coexist/node/inflight"
	"github.com/coexist-dev/coexist/node/reconcile"
	"github.com/coexist-dev/coexist/routing"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// AgentConfig configures an Agent.
type AgentConfig struct {
	// NodeID is this node's id in the registry.
	NodeID string
	// Client speaks to the registry, with an agent token for NodeID (or a
	// management token).
	Client *api.Client
	// Address is what the node registers as its address (default: the
	// gateway's host).
	Address string
	// GatewayAddr is where the gateway listens (default 127.0.0.1:7780).
	GatewayAddr string
	// Labels are registered with the node.
	Labels map[string]string
	// DataDir keeps the agent's own state, beside the driver's.
	DataDir string
	// Driver runs the containers; a driver.Mux runs each with the driver
	// its `driver` field names (exec by default).
	Driver driver.Driver
	// Plan holds the reconciler's timings.
	Plan reconcile.PlanConfig
	// HeartbeatInterval is how often the node heartbeats (default 2s; keep
	// it well under the registry's TTL).
	HeartbeatInterval time.Duration
	// ReconcileInterval is the longest time between two plans (default 1s);
	// changes trigger a plan at once.
	ReconcileInterval time.Duration
	// StopOnExit stops every container when Run returns (agent --dev,
	// whose state is temporary). Otherwise containers outlive the agent.
	StopOnExit bool
	Logger     hclog.Logger
	// Registerer receives the gateway's metrics; nil keeps them private.
	Registerer prometheus.Registerer
	// GatewayLimits bound what callers may hold of the gateway's listener
	// (gateway.GatewayConfig.Limits).
	GatewayLimits netlimit.Limits
	// GatewayEngine is how the gateway speaks HTTP/1.1; "": gateway.EngineFast.
	GatewayEngine gateway.Engine
}

// handleLoader is the driver's optional ability to list the containers a
// previous agent left running.
type handleLoader interface {
	LoadHandles() ([]*driver.Handle, error)
}

// Agent is the node agent.
type Agent struct {
	cfg    AgentConfig
	logger hclog.Logger

	inflight *inflight.Counts
	gateway  *gateway.Gateway
	table    atomic.Pointer[routing.Table]
	health   *http.Client
	kickCh   chan struct{}
	gwAddr   atomic.Value // string: the gateway's bound address
	ready    atomic.Bool  // the first view of all three tables is in
	tokens   *gateway.RegistryTokens
	keeper   *logKeeper // the output of removed containers (logs.go)

	mu         sync.Mutex
	minutes    map[string]*inflight.Minute // calls per minute per container, for display
	local      reconcile.Observed
	services   []api.Service
	containers []api.Container // every node's
	nodes      []api.Node
	loaded     [api.NumFleetTables]bool // each table answered once
	checkers   map[string]context.CancelFunc
	lastErr    map[string]string // last failed health check, by container
	persisted  map[string]persistedContainer
	reporting  map[string]bool

	wg sync.WaitGroup
}

// persistedContainer is what the agent keeps of a container across its own
// restarts, beside the driver's handle.
type persistedContainer struct {
	Fingerprint  string       `json:"fingerprint"`
	Restarts     int          `json:"restarts"`
	DrainTimeout api.Duration `json:"drain_timeout,omitempty"`
}

// NewAgent checks the configuration and builds an agent; Run starts it.
func NewAgent(cfg AgentConfig) (*Agent, error) {
	if cfg.NodeID == "" {
		return nil, errors.New("node id must not be empty")
	}
	if cfg.Client == nil || cfg.Driver == nil {
		return nil, errors.New("agent needs a registry client and a driver")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("data dir must not be empty")
	}
	if cfg.GatewayAddr == "" {
		cfg.GatewayAddr = "127.0.0.1:7780"
	}
	if cfg.Plan == (reconcile.PlanConfig{}) {
		cfg.Plan = reconcile.DefaultPlanConfig()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 2 * time.Second
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	a := &Agent{
		cfg:       cfg,
		logger:    cfg.Logger.Named("agent"),
		inflight:  inflight.New(),
		health:    &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}},
		kickCh:    make(chan struct{}, 1),
		local:     reconcile.Observed{},
		minutes:   map[string]*inflight.Minute{},
		checkers:  map[string]context.CancelFunc{},
		lastErr:   map[string]string{},
		reporting: map[string]bool{},
		tokens:    gateway.RegistryTokensOf(cfg.Client),
		keeper:    newLogKeeper(cfg.DataDir),
	}
	a.table.Store(routing.NewTable(nil, nil, nil))
	gw, err := gateway.NewGateway(gateway.GatewayConfig{NodeID: cfg.NodeID, Table: a.currentTable, Inflight: a.inflight,
		Logger: cfg.Logger.Named("gateway"), Registerer: cfg.Registerer, Ready: a.ready.Load,
		Authorize: a.tokens.Authorize, Logs: http.HandlerFunc(a.serveLogs), Limits: cfg.GatewayLimits, Engine: cfg.GatewayEngine})
	if err != nil {
		return nil, err
	}
	a.gateway = gw
	if err := a.loadPersisted(); err != nil {
		return nil, err
	}
	return a, nil
}

// Gateway returns the node's gateway handler.
func (a *Agent) Gateway() *gateway.Gateway { return a.gateway }

// GatewayAddr returns the address the gateway listens on, once Run bound it.
func (a *Agent) GatewayAddr() string {
	s, _ := a.gwAddr.Load().(string)
	return s
}

func (a *Agent) currentTable() *routing.Table { return a.table.Load() }

func (a *Agent) kick() {
	select {
	case a.kickCh <- struct{}{}:
	default:
	}
}

// Run registers the node, re-adopts the containers a previous agent left
// running, serves the gateway and reconciles until ctx ends. Containers keep
// running after Run returns: they outlive the agent.
func (a *Agent) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.GatewayAddr)
	if err != nil {
		return fmt.Errorf("listen on gateway address: %w", err)
	}
	a.gwAddr.Store(ln.Addr().String())
	// The gateway answers calls once the agent has its first complete view
	// of the registry (gateway.GatewayConfig.Ready); before that (a restarted agent
	// catching up), a call is refused as safe to retry rather than answered
	// from an empty table as if no service existed.
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.gateway.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.logger.Error("gateway stopped", "error", err)
		}
	}()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.gateway.Shutdown(sctx); err != nil {
			a.gateway.Close()
		}
		a.wg.Wait()
	}()

	if err := a.register(ctx); err != nil {
		return err
	}
	a.recover()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.startWatches(ctx)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.heartbeatLoop(ctx)
	}()
	a.reconcileLoop(ctx)
	a.mu.Lock()
	for _, stop := range a.checkers {
		stop()
	}
	var ids []string
	for id := range a.local {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	if a.cfg.StopOnExit {
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sctx, cancel := context.WithTimeout(context.Background(), a.cfg.Plan.KillTimeout+5*time.Second)
				defer cancel()
				if err := a.cfg.Driver.Stop(sctx, id, a.cfg.Plan.KillTimeout); err != nil {
					a.logger.Warn("stop container on exit", "container", id, "error", err)
				}
			}()
		}
		wg.Wait()
	}
	return nil
}

func (a *Agent) register(ctx context.Context) error {
	addr := a.cfg.Address
	gw := a.GatewayAddr()
	if addr == "" {
		addr, _, _ = net.SplitHostPort(gw)
	}
	req := api.NodeRequest{Address: addr, Gateway: gw, Labels: a.cfg.Labels}
	backoff := 100 * time.Millisecond
	for {
		_, _, err := a.cfg.Client.Nodes().Register(ctx, a.cfg.NodeID, req, nil)
		if err == nil {
			a.logger.Info("node registered", "node", a.cfg.NodeID, "gateway", gw)
			return nil
		}
		if api.IsUnauthorized(err) {
			return fmt.Errorf("register node %q: %w (the agent needs an agent token for this node or a management token)", a.cfg.NodeID, err)
		}
		if permanent(err) {
			return fmt.Errorf("register node %q: the registry refuses it, and would on every retry: %w", a.cfg.NodeID, err)
		}
		a.logger.Warn("register node failed; retrying", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// permanent reports whether err is an answer of the registry that the same
// request would get again: a 4xx other than 408 and 429.
func permanent(err error) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Code >= 400 && se.Code < 500 &&
		se.Code != http.StatusRequestTimeout && se.Code != http.StatusTooManyRequests
}

// recover re-adopts the containers a previous agent left running, so that
// they are not restarted.
func (a *Agent) recover() {
	loader, ok := a.cfg.Driver.(handleLoader)
	rec, ok2 := a.cfg.Driver.(driver.Recoverer)
	if !ok || !ok2 {
		return
	}
	handles, err := loader.LoadHandles()
	if err != nil {
		a.logger.Warn("load container handles", "error", err)
		return
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range handles {
		p := a.persisted[h.ID]
		l := &reconcile.Local{ID: h.ID, Fingerprint: p.Fingerprint, Restarts: p.Restarts, DrainTimeout: p.DrainTimeout.Std(), Inflight: map[string]int{}}
		if err := rec.Recover(h); err != nil {
			a.logger.Info("container did not survive the agent; it will be restarted", "container", h.ID, "reason", err)
			l.Phase, l.ExitedAt, l.ExitCode, l.Exits = reconcile.PhaseExited, now, -1, reconcile.RecordExit(nil, now)
			l.Message = "exited while the agent was down"
			a.local[h.ID] = l
			continue
		}
		l.Phase, l.HealthyOnce = reconcile.PhaseRunning, true
		l.PID, l.Endpoint, l.StartedAt = h.PID, h.Endpoint, h.StartedAt
		a.local[h.ID] = l
		a.logger.Info("re-adopted container", "container", h.ID, "pid", h.PID, "endpoint", h.Endpoint)
		a.watchProcess(h.ID, h.PID)
		a.startChecker(h.ID, h.PID, h.Endpoint, nil, true)
	}
}

func (a *Agent) startWatches(ctx context.Context) {
	ident := &api.Identity{Instance: api.NewInstanceID(), Client: api.AgentClientName, ClientVersion: a.cfg.NodeID}
	cfg := api.FleetConfig{
		// A node must see changes soon after a registry outage: back off
		// at most a second.
		Watch: api.WatchConfig{WaitTime: 30 * time.Second, AllowStale: true, MaxBackoff: time.Second},
		OnError: func(t api.FleetTable, err error, d time.Duration) {
			a.logger.Warn("watch failed; retrying", "watch", t.String(), "error", err, "retry_in", d)
		},
		OnServices:   func(v []api.Service, _ *api.QueryMeta) { a.update(api.FleetServices, func() { a.services = v }) },
		OnContainers: func(v []api.Container, _ *api.QueryMeta) { a.update(api.FleetContainers, func() { a.containers = v }) },
		OnNodes:      func(v []api.Node, _ *api.QueryMeta) { a.update(api.FleetNodes, func() { a.nodes = v }) },
		// Every watch says who asks, so that the registry counts this
		// node's gateway in its census (docs/design.md §5).
		Prepare: func(_ api.FleetTable, q *api.QueryOptions) { q.Identity = ident },
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		// api.WatchFleet ignores the answers of a server that knows no
		// leader: acting on a restarted server's empty tables would stop
		// every container.
		api.WatchFleet(ctx, a.cfg.Client, cfg)
	}()
}

func (a *Agent) update(which api.FleetTable, set func()) {
	a.mu.Lock()
	set()
	a.loaded[which] = true
	a.rebuildTableLocked()
	if a.loaded[api.FleetServices] && a.loaded[api.FleetContainers] && a.loaded[api.FleetNodes] {
		a.ready.Store(true)
	}
	a.mu.Unlock()
	a.kick()
}

// rebuildTableLocked builds the gateway's table from the registry's view with
// this node's containers as the agent itself observes them (Overlay).
func (a *Agent) rebuildTableLocked() {
	versions := versionStates(a.services)
	cs := make([]api.Container, len(a.containers))
	copy(cs, a.containers)
	for i := range cs {
		c := &cs[i]
		if c.Node != a.cfg.NodeID {
			continue
		}
		c.Status = reconcile.Overlay(c, a.local[c.ID], versions)
		if c.Status == nil {
			continue
		}
		if snap := a.inflight.Snapshot(c.ID); len(snap) > 0 {
			for j := range c.Status.Services {
				c.Status.Services[j].Inflight = snap[c.Status.Services[j].Service+"@"+c.Status.Services[j].Version]
			}
		}
	}
	a.table.Store(routing.NewTable(a.services, cs, a.nodes))
}

func versionStates(services []api.Service) map[string]string {
	m := make(map[string]string)
	for _, s := range services {
		for _, v := range s.Versions {
			m[s.Name+"@"+v.Version] = v.State
		}
	}
	return m
}

func (a *Agent) heartbeatLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, a.cfg.HeartbeatInterval)
		_, _, err := a.cfg.Client.Nodes().Heartbeat(hctx, a.cfg.NodeID, nil)
		cancel()
		switch {
		case err == nil:
		case api.IsNotFound(err):
			a.logger.Warn("node unknown to the registry (purged?); registering again")
			if err := a.register(ctx); err != nil {
				a.logger.Error("register node", "error", err)
			}
		case ctx.Err() == nil:
			a.logger.Warn("heartbeat failed", "error", err)
		}
	}
}

func (a *Agent) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.kickCh:
		case <-t.C:
			// Poll fast while anything is in motion (a drain waits on
			// in-flight counts, which change without a kick).
			if !a.busy() && time.Since(last) < a.cfg.ReconcileInterval {
				continue
			}
		}
		last = time.Now()
		a.reconcile(ctx)
	}
}

// busy reports whether a local container is in a phase that waits on time or
// in-flight counts.
func (a *Agent) busy() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, l := range a.local {
		switch l.Phase {
		case reconcile.PhaseDraining, reconcile.PhaseStarting, reconcile.PhaseExited, reconcile.PhaseStopping:
			return true
		}
	}
	return false
}

func (a *Agent) reconcile(ctx context.Context) {
	a.mu.Lock()
	if !(a.loaded[0] && a.loaded[1] && a.loaded[2]) {
		// Never plan from a partial view: an agent that restarted would
		// stop the containers it re-adopted.
		a.mu.Unlock()
		return
	}
	var mine []api.Container
	for _, c := range a.containers {
		if c.Node == a.cfg.NodeID {
			mine = append(mine, c)
		}
	}
	now := time.Now()
	for id, l := range a.local {
		l.Inflight = a.inflight.Snapshot(id)
		m := a.minutes[id]
		if m == nil {
			m = &inflight.Minute{}
			a.minutes[id] = m
		}
		l.CallsPerMinute = m.Observe(now, a.inflight.Served(id))
	}
	d := reconcile.Desired{Containers: mine, Versions: versionStates(a.services)}
	acts := reconcile.Plan(d, a.local, now, a.cfg.Plan)
	a.mu.Unlock()

	changed := false
	for _, act := range acts {
		if act.Kind != reconcile.ActReport {
			a.logger.Info("plan", "action", act.Kind.String(), "container", act.ID, "reason", act.Reason)
		}
		if a.carryOut(ctx, act, now) {
			changed = true
		}
	}
	if changed {
		a.mu.Lock()
		a.rebuildTableLocked()
		a.mu.Unlock()
		a.kick()
	}
}

// carryOut performs one action and reports whether local state changed.
func (a *Agent) carryOut(ctx context.Context, act reconcile.Action, now time.Time) bool {
	switch act.Kind {
	case reconcile.ActStart:
		a.start(ctx, act.Container)
		return true
	case reconcile.ActDrain:
		a.mu.Lock()
		if l := a.local[act.ID]; l != nil {
			l.Phase, l.DrainStartedAt = reconcile.PhaseDraining, now
		}
		a.mu.Unlock()
		return true
	case reconcile.ActResume:
		a.mu.Lock()
		if l := a.local[act.ID]; l != nil && l.Phase == reconcile.PhaseDraining {
			l.Phase, l.DrainStartedAt = reconcile.PhaseRunning, time.Time{}
		}
		a.mu.Unlock()
		return true
	case reconcile.ActStop:
		a.mu.Lock()
		l := a.local[act.ID]
		if l != nil {
			l.Phase = reconcile.PhaseStopping
		}
		a.stopCheckerLocked(act.ID)
		a.mu.Unlock()
		a.stopAsync(act.ID, act.Grace)
		return true
	case reconcile.ActFail:
		tail := a.tail(act.ID)
		a.mu.Lock()
		if l := a.local[act.ID]; l != nil {
			l.Phase = reconcile.PhaseFailed
			msg := act.Reason
			if e := a.lastErr[act.ID]; e != "" {
				msg += ": " + e
			}
			if tail != "" {
				msg += "\nlast output:\n" + tail
			}
			l.Message = msg
		}
		a.stopCheckerLocked(act.ID)
		a.mu.Unlock()
		a.stopAsync(act.ID, act.Grace)
		return true
	case reconcile.ActReport:
		a.report(ctx, act.ID, act.Status)
		return false
	case reconcile.ActForget:
		a.mu.Lock()
		delete(a.local, act.ID)
		delete(a.minutes, act.ID)
		delete(a.lastErr, act.ID)
		a.stopCheckerLocked(act.ID)
		delete(a.persisted, act.ID)
		a.savePersistedLocked()
		a.mu.Unlock()
		a.inflight.Forget(act.ID)
		a.keepLogs(act.ID)
		if r, ok := a.cfg.Driver.(driver.Remover); ok {
			if err := r.Remove(act.ID); err != nil && !errors.Is(err, driver.ErrNotFound) {
				a.logger.Warn("remove container files", "container", act.ID, "error", err)
			}
		}
		return true
	}
	return false
}

func servicesEnv(c *api.Container) string {
	parts := make([]string, len(c.Services))
	for i, s := range c.Services {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

func (a *Agent) start(ctx context.Context, c *api.Container) {
	spec, err := specOf(a.cfg.NodeID, c)
	fp := reconcile.Fingerprint(c)
	var h *driver.Handle
	if err == nil {
		h, err = a.cfg.Driver.Start(ctx, spec)
	}
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	prev := a.local[c.ID]
	l := &reconcile.Local{ID: c.ID, Fingerprint: fp, DrainTimeout: c.DrainTimeout.Std(), Inflight: map[string]int{}}
	if prev != nil {
		l.Reported, l.ReportedAt = prev.Reported, prev.ReportedAt
		l.Exits = prev.Exits
		l.Restarts = prev.Restarts
		if prev.Phase == reconcile.PhaseExited {
			l.Restarts++
		}
	}
	a.local[c.ID] = l
	if err != nil {
		a.logger.Error("start failed", "container", c.ID, "error", err)
		l.Phase, l.ExitedAt, l.Message = reconcile.PhaseExited, now, "start failed: "+err.Error()
		l.Exits = reconcile.RecordExit(l.Exits, now)
		return
	}
	l.Phase, l.PID, l.Endpoint, l.StartedAt = reconcile.PhaseStarting, h.PID, h.Endpoint, h.StartedAt
	if l.Restarts > 0 {
		l.Message = fmt.Sprintf("restarted %d times", l.Restarts)
	}
	a.persisted[c.ID] = persistedContainer{Fingerprint: fp, Restarts: l.Restarts, DrainTimeout: c.DrainTimeout}
	a.savePersistedLocked()
	a.logger.Info("container started", "container", c.ID, "pid", h.PID, "endpoint", h.Endpoint, "services", spec.Services)
	a.watchProcess(c.ID, h.PID)
	a.startChecker(c.ID, h.PID, h.Endpoint, c.Health, false)
}

// watchProcess waits for a container's process to exit and records how.
func (a *Agent) watchProcess(id string, pid int) {
	ch, err := a.cfg.Driver.Wait(context.Background(), id)
	if err != nil {
		a.logger.Warn("wait on container", "container", id, "error", err)
		return
	}
	go func() {
		res := <-ch
		tail := a.tail(id)
		a.mu.Lock()
		l := a.local[id]
		if l == nil || l.PID != pid {
			a.mu.Unlock()
			return
		}
		a.stopCheckerLocked(id)
		switch l.Phase {
		case reconcile.PhaseStopping:
			l.Phase = reconcile.PhaseStopped
			l.Message = ""
		case reconcile.PhaseFailed:
		default:
			l.Phase, l.ExitedAt, l.ExitCode = reconcile.PhaseExited, time.Now(), res.ExitCode
			l.Exits = reconcile.RecordExit(l.Exits, l.ExitedAt)
			l.Message = res.Describe()
			if tail != "" {
				l.Message += "\nlast output:\n" + tail
			}
			a.logger.Warn("container exited", "container", id, "exit_code", res.ExitCode)
		}
		a.rebuildTableLocked()
		a.mu.Unlock()
		a.kick()
	}()
}

func (a *Agent) stopAsync(id string, grace time.Duration) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace+10*time.Second)
		defer cancel()
		if err := a.cfg.Driver.Stop(ctx, id, grace); err != nil {
			a.logger.Warn("stop container", "container", id, "error", err)
		}
	}()
}

func (a *Agent) tail(id string) string {
	t, ok := a.cfg.Driver.(driver.LogTailer)
	if !ok {
		return ""
	}
	s, err := t.Tail(id, 20)
	if err != nil {
		return ""
	}
	return strings.TrimRight(s, "\n")
}

// startChecker runs a container's health checks until it stops: at once,
// then fast until the first pass (startWait), then at the declared interval.
func (a *Agent) startChecker(id string, pid int, endpoint string, h *api.HealthCheck, healthy bool) {
	ctx, cancel := context.WithCancel(context.Background())
	if stop, ok := a.checkers[id]; ok {
		stop()
	}
	a.checkers[id] = cancel
	go func() {
		fails, checks := 0, 0
		passed := healthy
		began := time.Now()
		// Until the first pass, check at once and then fast (startWait): a
		// service that listens within a few milliseconds is routable
		// within a few milliseconds.
		for {
			wait := startWait(checks, time.Since(began))
			if passed {
				wait = healthInterval(h)
			}
			if wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			err := checkHealth(ctx, a.health, endpoint, h)
			checks++
			if ctx.Err() != nil {
				return
			}
			a.mu.Lock()
			l := a.local[id]
			if l == nil || l.PID != pid {
				a.mu.Unlock()
				return
			}
			changed := false
			if err == nil {
				if !passed {
					a.logger.Debug("first health check passed", "container", id, "checks", checks, "took", time.Since(began))
				}
				fails = 0
				passed = true
				delete(a.lastErr, id)
				if l.Phase == reconcile.PhaseStarting || l.Phase == reconcile.PhaseUnhealthy {
					l.Phase, l.HealthyOnce = reconcile.PhaseRunning, true
					if l.Restarts == 0 {
						l.Message = ""
					}
					changed = true
				}
			} else {
				fails++
				a.lastErr[id] = err.Error()
				if l.Phase == reconcile.PhaseRunning && fails >= unhealthyAfter {
					l.Phase, l.Message = reconcile.PhaseUnhealthy, "health check failing: "+err.Error()
					changed = true
				}
			}
			if changed {
				a.rebuildTableLocked()
			}
			a.mu.Unlock()
			if changed {
				a.kick()
			}
		}
	}()
}

func (a *Agent) stopCheckerLocked(id string) {
	if stop, ok := a.checkers[id]; ok {
		stop()
		delete(a.checkers, id)
	}
}

// report sends a status to the registry in the background; the latest
// status of a container wins, and one report per container is in flight.
func (a *Agent) report(ctx context.Context, id string, st *api.ContainerStatus) {
	a.mu.Lock()
	if a.reporting[id] {
		a.mu.Unlock()
		return
	}
	a.reporting[id] = true
	a.mu.Unlock()
	go func() {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, _, err := a.cfg.Client.Containers().UpdateStatus(rctx, id, *st, nil)
		cancel()
		a.mu.Lock()
		delete(a.reporting, id)
		if err == nil {
			switch l := a.local[id]; {
			case l != nil:
				l.Reported, l.ReportedAt = st, time.Now()
			case st.State == api.ContainerStopped:
				// A container that never ran here (all its versions
				// retired, or deleted first): remember the report, so
				// that the plan does not send it again.
				a.local[id] = &reconcile.Local{ID: id, Phase: reconcile.PhaseStopped, Reported: st, ReportedAt: time.Now(), Inflight: map[string]int{}}
			}
		}
		a.mu.Unlock()
		switch {
		case err == nil:
			a.kick()
		case api.IsNotFound(err):
			// Reaped by the registry; the next plan forgets it.
		case ctx.Err() == nil:
			a.logger.Warn("report status", "container", id, "state", st.State, "error", err)
		}
	}()
}

func (a *Agent) persistPath() string { return filepath.Join(a.cfg.DataDir, "agent-containers.json") }

func (a *Agent) loadPersisted() error {
	a.persisted = map[string]persistedContainer{}
	b, err := os.ReadFile(a.persistPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read agent state: %w", err)
	}
	if err := json.Unmarshal(b, &a.persisted); err != nil {
		return fmt.Errorf("read agent state %s: %w", a.persistPath(), err)
	}
	return nil
}

func (a *Agent) savePersistedLocked() {
	b, err := json.Marshal(a.persisted)
	if err != nil {
		return
	}
	tmp := a.persistPath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		a.logger.Warn("write agent state", "error", err)
		return
	}
	if err := os.Rename(tmp, a.persistPath()); err != nil {
		a.logger.Warn("write agent state", "error", err)
	}
}

// Local returns a copy of the agent's record of a container, for tests and
// status output.
func (a *Agent) Local(id string) (reconcile.Local, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.local[id]
	if !ok {
		return reconcile.Local{}, false
	}
	c := *l
	c.Inflight = maps.Clone(l.Inflight)
	return c, true
}
