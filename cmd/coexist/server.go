package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/internal/netlimit"
	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/coexist-dev/coexist/raftregistry/httpd"
	"github.com/coexist-dev/coexist/ui"
	"github.com/hashicorp/go-hclog"
)

// envManagementToken names the variable the management token comes from,
// for `server` and for `agent --dev`.
const envManagementToken = "COEXIST_MANAGEMENT_TOKEN"

type serverFlags struct {
	nodeID, httpAddr, raftAddr, dataDir, join, token string
	advertiseHTTP                                    string
	bootstrap                                        bool
	tlsCert, tlsKey, tlsClientCA                     string
	logLevel                                         string
	heartbeatTTL, censusTTL                          time.Duration
	maxConns                                         int
}

func runServer(args []string, stdout, stderr io.Writer) int {
	var f serverFlags
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	describe(fs, "[flags]", "Runs a registry server, a Raft member holding the desired and observed state of the fleet.\n"+
		"Start the first with --bootstrap and the others with --join.",
		"COEXIST_MANAGEMENT_TOKEN=... coexist server --node-id s1 --data-dir /var/lib/coexist --bootstrap")
	fs.StringVar(&f.nodeID, "node-id", "", "this server's unique id (default: the host name)")
	fs.StringVar(&f.httpAddr, "http-addr", "127.0.0.1:7700", "address the HTTP API listens on")
	fs.StringVar(&f.advertiseHTTP, "advertise-http", "", "URL other servers use to reach this one's API (default: derived from --http-addr)")
	fs.StringVar(&f.raftAddr, "raft-addr", "127.0.0.1:7701", "address Raft listens on and advertises")
	fs.StringVar(&f.dataDir, "data-dir", "", "directory for the Raft log and snapshots (required)")
	fs.BoolVar(&f.bootstrap, "bootstrap", false, "start a new cluster with this server as its only member (ignored when the data dir holds Raft state)")
	fs.StringVar(&f.join, "join", "", "URL of any member's HTTP API to join (retries until accepted; ignored when the data dir holds Raft state)")
	secretVar(fs, &f.token, "management-token", envManagementToken, "management token, 16 characters or more")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file for the HTTP API")
	fs.StringVar(&f.tlsKey, "tls-key", "", "TLS key file for the HTTP API")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "CA file; when set, client certificates signed by it are verified if presented, and used to verify other servers when forwarding")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	fs.DurationVar(&f.heartbeatTTL, "heartbeat-ttl", 10*time.Second, "how long a node stays ready without a heartbeat")
	fs.DurationVar(&f.censusTTL, "census-ttl", raftregistry.DefaultCensusTTL, "how long a watcher counts as live after its last request (docs/design.md §5)")
	fs.IntVar(&f.maxConns, "max-conns", 0, "most connections open at once on the HTTP API; 0: a quarter of the open-file limit, 64 to 4096")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "server", pos) {
		return 2
	}
	if err := f.validate(); err != nil {
		fmt.Fprintf(stderr, "coexist server: %v\n", err)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "coexist", Level: hclog.LevelFromString(f.logLevel), Output: stderr})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, &f, logger); err != nil {
		logger.Error("server failed", "error", err)
		return 1
	}
	return 0
}

func (f *serverFlags) validate() error {
	if f.nodeID == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("--node-id: %w", err)
		}
		f.nodeID = strings.ToLower(h)
	}
	if f.dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if len(f.token) < 16 {
		return errors.New("a management token of 16 characters or more is required: set COEXIST_MANAGEMENT_TOKEN or --management-token-file")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if f.censusTTL <= 0 {
		return fmt.Errorf("--census-ttl %s: want a positive duration", f.censusTTL)
	}
	if f.maxConns < 0 {
		return fmt.Errorf("--max-conns %d: want 0 (the default) or more", f.maxConns)
	}
	if f.bootstrap && f.join != "" {
		return errors.New("--bootstrap and --join exclude each other")
	}
	if f.advertiseHTTP == "" {
		scheme := "http"
		if f.tlsCert != "" {
			scheme = "https"
		}
		f.advertiseHTTP = scheme + "://" + f.httpAddr
	}
	return nil
}

func (f *serverFlags) tlsConfig() (*tls.Config, error) {
	if f.tlsCert == "" {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, fmt.Errorf("load --tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if f.tlsClientCA != "" {
		pem, err := os.ReadFile(f.tlsClientCA)
		if err != nil {
			return nil, fmt.Errorf("read --tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--tls-client-ca %s holds no PEM certificate", f.tlsClientCA)
		}
		cfg.ClientCAs = pool
		cfg.RootCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

func serve(ctx context.Context, f *serverFlags, logger hclog.Logger) error {
	tlsCfg, err := f.tlsConfig()
	if err != nil {
		return err
	}
	existing, err := raftregistry.HasExistingState(f.dataDir)
	if err != nil {
		return fmt.Errorf("inspect data dir: %w", err)
	}
	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr: %w", err)
	}
	cfg := raftregistry.DefaultConfig()
	cfg.NodeID = f.nodeID
	cfg.RaftAddr = f.raftAddr
	cfg.HTTPAddr = f.advertiseHTTP
	cfg.DataDir = f.dataDir
	cfg.Bootstrap = f.bootstrap
	cfg.HeartbeatTTL = f.heartbeatTTL
	cfg.CensusTTL = f.censusTTL
	cfg.Logger = logger
	store, err := raftregistry.New(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	h, err := httpd.New(httpd.Config{Store: store, Logger: logger.Named("http"), ManagementToken: f.token, TLSConfig: tlsCfg, CensusTTL: f.censusTTL})
	if err != nil {
		ln.Close()
		_ = store.Shutdown()
		return err
	}
	srv, ln := h.HTTPServer(ln, netlimit.Limits{MaxConns: f.maxConns}, tlsCfg != nil)
	srv.TLSConfig = tlsCfg
	srv.Handler = ui.Mount(srv.Handler) // the operator's UI at /ui/
	srv.ErrorLog = logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	errCh := make(chan error, 1)
	go func() {
		if tlsCfg != nil {
			errCh <- srv.ServeTLS(ln, "", "")
		} else {
			errCh <- srv.Serve(ln)
		}
	}()
	logger.Info("coexist server started", "node_id", f.nodeID, "http", f.advertiseHTTP, "raft", f.raftAddr, "data_dir", f.dataDir)

	joinCtx, cancelJoin := context.WithCancel(ctx)
	defer cancelJoin()
	go h.RunCensus(joinCtx)
	switch {
	case f.join != "" && existing:
		logger.Info("data dir holds raft state: --join ignored")
	case f.join != "":
		go joinLoop(joinCtx, f, tlsCfg, logger)
	case !existing && !f.bootstrap:
		go waitToBeAdded(joinCtx, f, store, logger)
	}

	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case err := <-errCh:
		_ = store.Shutdown()
		return fmt.Errorf("http server: %w", err)
	}
	cancelJoin()
	// Hand leadership over first: the HTTP API keeps answering (and
	// forwarding) while Raft settles on a new leader.
	serr := store.Shutdown()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return serr
}

// waitToBeAdded says, until this server learns of a leader, that a server
// with no Raft state and neither --bootstrap nor --join waits to be added by
// a member. It keeps waiting rather than exit: membership is pushed by the
// cluster (a member's POST /v1/cluster/join adds it, which is what --join
// asks of a member), so a server started this way is useful once an operator
// adds it; an operator who forgot a flag learns which one from this line.
func waitToBeAdded(ctx context.Context, f *serverFlags, store *raftregistry.Store, logger hclog.Logger) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if _, ok := store.Leader(); ok {
			return
		}
		logger.Warn("no Raft state in --data-dir and neither --bootstrap nor --join: waiting to be added to a cluster. "+
			"Start the first server of a new cluster with --bootstrap and the others with --join <URL of a member>, "+
			"or add this one from a member with POST /v1/cluster/join",
			"id", f.nodeID, "raft_addr", f.raftAddr, "http_addr", f.advertiseHTTP)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// joinLoop asks the member at --join to add this server, until it is accepted.
func joinLoop(ctx context.Context, f *serverFlags, tlsCfg *tls.Config, logger hclog.Logger) {
	cfg := &api.Config{Address: f.join, Token: f.token}
	if f.tlsClientCA != "" {
		cfg.TLS.CAFile = f.tlsClientCA
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		logger.Error("--join", "error", err)
		return
	}
	req := api.JoinRequest{ID: f.nodeID, RaftAddr: f.raftAddr, HTTPAddr: f.advertiseHTTP}
	backoff := 200 * time.Millisecond
	for {
		_, err := client.Cluster().Join(ctx, req, nil)
		if err == nil {
			logger.Info("joined the cluster", "via", f.join)
			return
		}
		logger.Warn("join failed; retrying", "via", f.join, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}
