package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/netlimit"
	"github.com/coexist-dev/coexist/node"
	"github.com/coexist-dev/coexist/node/gateway"
	"github.com/coexist-dev/coexist/node/reconcile"
	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/coexist-dev/coexist/raftregistry/httpd"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/coexist-dev/coexist/ui"
	"github.com/hashicorp/go-hclog"
)

type agentFlags struct {
	nodeID, registry, token, gatewayAddr, dataDir, portRange, logLevel string
	httpAddr, raftAddr                                                 string
	labels                                                             labelFlag
	dev                                                                bool
	startTimeout, killTimeout                                          time.Duration
	gatewayMaxConns                                                    int
	gatewayEngine                                                      string
	portMin, portMax                                                   int // of portRange, set by validate
}

// addrListFlag is --registry: repeated, or URLs separated by commas. Its
// first use replaces the default (COEXIST_ADDR).
type addrListFlag struct {
	list *string
	set  bool
}

func (a *addrListFlag) String() string {
	if a.list == nil {
		return ""
	}
	return *a.list
}

func (a *addrListFlag) Set(s string) error {
	if !a.set {
		*a.list, a.set = "", true
	}
	if *a.list != "" {
		*a.list += ","
	}
	*a.list += s
	return nil
}

type labelFlag map[string]string

func (l labelFlag) String() string { return fmt.Sprint(map[string]string(l)) }
func (l labelFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("label %q: want key=value", s)
	}
	l[k] = v
	return nil
}

func runAgent(args []string, stdout, stderr io.Writer) int {
	f := agentFlags{labels: labelFlag{}}
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	describe(fs, "[flags]", "Runs a node agent: it registers the node, starts and stops the containers the registry\n"+
		"assigns to it, checks their health, and fronts them with the node's gateway. With --dev it also\n"+
		"runs a one-server registry in the same process, for trying coexist on one machine.",
		"COEXIST_TOKEN=... coexist agent --node-id n1 --registry http://10.0.0.1:7700 --data-dir /var/lib/coexist\ncoexist agent --dev")
	fs.StringVar(&f.nodeID, "node-id", "", "this node's id (default: the host name)")
	f.registry = envOr("COEXIST_ADDR", api.DefaultAddress)
	fs.Var(&addrListFlag{list: &f.registry}, "registry", "registry server URL; repeat it or separate URLs with commas, the agent learns the other servers (env COEXIST_ADDR)")
	secretVar(fs, &f.token, "token", api.EnvToken, "agent token for this node")
	fs.StringVar(&f.gatewayAddr, "gateway-addr", "127.0.0.1:7780", "address the node's gateway listens on")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for container state and logs (required; --dev: a temporary one)")
	fs.StringVar(&f.portRange, "port-range", "21000-21999", "ports handed to containers, below the kernel's ephemeral range")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.Var(f.labels, "label", "node label key=value (repeatable)")
	fs.DurationVar(&f.startTimeout, "start-timeout", 30*time.Second, "how long a new container may take to pass its first health check before it is failed")
	fs.DurationVar(&f.killTimeout, "kill-timeout", 5*time.Second, "time between SIGTERM and SIGKILL when stopping a container")
	fs.StringVar(&f.gatewayEngine, "gateway-engine", string(gateway.EngineFast), "how the gateway speaks HTTP/1.1: fast (its own engine for the calls of service clients, net/http for the rest) or std (net/http and ReverseProxy for every call)")
	fs.IntVar(&f.gatewayMaxConns, "gateway-max-conns", 0, "most connections open at once on the gateway; 0: a quarter of the open-file limit, 64 to 4096")
	fs.BoolVar(&f.dev, "dev", false, "run a single-server registry, this agent and its gateway in one process (the embedded default)")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:7700", "--dev: the registry's HTTP address")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7701", "--dev: the registry's Raft address")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "agent", pos) {
		return 2
	}
	if err := f.validate(); err != nil {
		// Bad usage, as a flag that does not parse: exit 2.
		fmt.Fprintf(stderr, "coexist agent: %v\n", err)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "coexist", Level: hclog.LevelFromString(f.logLevel), Output: stderr})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := runAgentFlags(ctx, &f, stdout, logger); err != nil {
		fmt.Fprintf(stderr, "coexist agent: %v\n", err)
		return 1
	}
	return 0
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func parsePortRange(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return 0, 0, fmt.Errorf("--port-range %q: want LOW-HIGH, e.g. 21000-21999", s)
	}
	return a, b, nil
}

// validate checks the flags and fills in what they imply.
func (f *agentFlags) validate() error {
	fromHost := f.nodeID == ""
	if fromHost {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--node-id: %w", err)
		}
		f.nodeID = strings.ToLower(h)
	}
	// The registry's own rule: a node id it would refuse with a 400 on
	// every registration is bad usage here.
	if err := state.ValidateName("--node-id", f.nodeID); err != nil {
		if fromHost {
			return fmt.Errorf("%w (it defaults to the host name: set --node-id)", err)
		}
		return err
	}
	if _, err := api.ParseAddresses(f.registry); err != nil {
		return fmt.Errorf("--registry: %w", err)
	}
	var err error
	if f.portMin, f.portMax, err = parsePortRange(f.portRange); err != nil {
		return err
	}
	if _, err := gateway.ParseEngine(f.gatewayEngine); err != nil {
		return fmt.Errorf("--gateway-engine %q: want %q or %q", f.gatewayEngine, gateway.EngineFast, gateway.EngineStd)
	}
	if f.gatewayMaxConns < 0 {
		return fmt.Errorf("--gateway-max-conns %d: want 0 (the default) or more", f.gatewayMaxConns)
	}
	if f.dataDir == "" && !f.dev {
		return errors.New("--data-dir is required")
	}
	return nil
}

// runAgentFlags runs the agent of validated flags.
func runAgentFlags(ctx context.Context, f *agentFlags, stdout io.Writer, logger hclog.Logger) error {
	if f.dataDir == "" {
		dir, err := os.MkdirTemp("", "coexist-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		f.dataDir = dir
	}
	if f.dev {
		shutdown, err := startDevRegistry(ctx, f, stdout, logger)
		if err != nil {
			return err
		}
		defer shutdown()
	}
	client, err := api.NewClient(&api.Config{Address: f.registry, Token: f.token, RefreshServers: api.DefaultRefreshServers})
	if err != nil {
		return err
	}
	drv, err := newDrivers(f, logger)
	if err != nil {
		return err
	}
	plan := reconcile.DefaultPlanConfig()
	plan.StartTimeout, plan.KillTimeout = f.startTimeout, f.killTimeout
	a, err := node.NewAgent(node.AgentConfig{NodeID: f.nodeID, Plan: plan, Client: client, GatewayAddr: f.gatewayAddr,
		Labels: f.labels, DataDir: f.dataDir, Driver: drv, Logger: logger, StopOnExit: f.dev,
		GatewayLimits: netlimit.Limits{MaxConns: f.gatewayMaxConns}, GatewayEngine: gateway.Engine(f.gatewayEngine)})
	if err != nil {
		return err
	}
	logger.Info("agent starting", "node", f.nodeID, "registry", f.registry, "gateway", f.gatewayAddr, "data_dir", f.dataDir)
	return a.Run(ctx)
}

// startDevRegistry runs a single-server registry in this process, for
// `agent --dev`, and points the agent at it with the management token.
func startDevRegistry(ctx context.Context, f *agentFlags, stdout io.Writer, logger hclog.Logger) (func(), error) {
	token := os.Getenv(envManagementToken)
	switch {
	case token != "" && len(token) < 16:
		return nil, errors.New("COEXIST_MANAGEMENT_TOKEN must be 16 characters or more")
	case token == "":
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		token = hex.EncodeToString(b)
		fmt.Fprintf(stdout, "management token: %s\n", token)
	}
	cfg := raftregistry.DefaultConfig()
	cfg.NodeID = "dev"
	cfg.RaftAddr = f.raftAddr
	cfg.HTTPAddr = "http://" + f.httpAddr
	cfg.DataDir = filepath.Join(f.dataDir, "registry")
	cfg.Bootstrap = true
	cfg.Logger = logger
	store, err := raftregistry.New(cfg)
	if err != nil {
		return nil, err
	}
	h, err := httpd.New(httpd.Config{Store: store, Logger: logger.Named("http"), ManagementToken: token})
	if err != nil {
		_ = store.Shutdown()
		return nil, err
	}
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		_ = store.Shutdown()
		return nil, fmt.Errorf("listen on --http-addr: %w", err)
	}
	srv, ln := h.HTTPServer(ln, netlimit.Limits{}, false)
	srv.Handler = ui.Mount(srv.Handler) // the operator's UI at /ui/
	go func() { _ = srv.Serve(ln) }()
	censusCtx, stopCensus := context.WithCancel(context.Background())
	go h.RunCensus(censusCtx)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := store.WaitForLeader(wctx); err != nil {
		_ = srv.Close()
		stopCensus()
		_ = store.Shutdown()
		return nil, err
	}
	f.registry = "http://" + ln.Addr().String()
	f.token = token
	logger.Info("dev registry ready", "addr", f.registry)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		stopCensus()
		_ = store.Shutdown()
	}, nil
}
