package hostbed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// Ports every host uses: each has its own address, so they never clash.
const (
	httpPort    = 7700
	raftPort    = 7701
	gatewayPort = 7780
)

// ClusterConfig says what runs on a bed.
type ClusterConfig struct {
	// BinDir holds the coexist and greeter binaries.
	BinDir string
	// Token is the management token, also the agents' token.
	Token string
	// HeartbeatTTL is the servers' --heartbeat-ttl.
	HeartbeatTTL time.Duration
	// DiskSize, when positive, gives each server a tmpfs of that many
	// bytes as its data dir, so that a nemesis can fill it.
	DiskSize int64
}

// Cluster is registry servers and agents, each on its own host of a bed.
type Cluster struct {
	Bed     *Bed
	Cfg     ClusterConfig
	Servers []*Server
	Agents  []*Agent

	tokenFile string
}

// Server is one `coexist server` on its host.
type Server struct {
	ID      string
	Host    *Host
	Proc    *Proc
	DataDir string
}

// URL is the server's HTTP API.
func (s *Server) URL() string { return fmt.Sprintf("http://%s:%d", s.Host.IP, httpPort) }

// Agent is one `coexist agent` on its host; the node id is the host's name.
type Agent struct {
	ID       string
	Host     *Host
	Proc     *Proc
	Registry []*Server // the servers it is given, first the one it talks to
}

// Gateway is the agent's gateway address.
func (a *Agent) Gateway() string { return fmt.Sprintf("%s:%d", a.Host.IP, gatewayPort) }

// NewCluster writes the token file; servers and agents are added after.
func NewCluster(b *Bed, cfg ClusterConfig) (*Cluster, error) {
	if cfg.HeartbeatTTL == 0 {
		cfg.HeartbeatTTL = 5 * time.Second
	}
	c := &Cluster{Bed: b, Cfg: cfg, tokenFile: filepath.Join(b.Dir(), "token")}
	if err := os.WriteFile(c.tokenFile, []byte(cfg.Token+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	return c, nil
}

// StartServers adds n hosts s1..sn and starts a server on each: the first
// bootstraps, the others join it. It returns when all n are peers.
func (c *Cluster) StartServers(ctx context.Context, n int) error {
	for i := range n {
		id := fmt.Sprintf("s%d", i+1)
		h, err := c.Bed.AddHost(id)
		if err != nil {
			return err
		}
		s := &Server{ID: id, Host: h, DataDir: filepath.Join(h.Dir(), "data")}
		if c.Cfg.DiskSize > 0 {
			if s.DataDir, err = h.SmallDisk(c.Cfg.DiskSize); err != nil {
				return err
			}
		}
		args := []string{filepath.Join(c.Cfg.BinDir, "coexist"), "server", "--node-id", id,
			"--http-addr", fmt.Sprintf("%s:%d", h.IP, httpPort), "--raft-addr", fmt.Sprintf("%s:%d", h.IP, raftPort),
			"--advertise-http", fmt.Sprintf("http://%s:%d", h.IP, httpPort),
			"--data-dir", s.DataDir, "--management-token-file", c.tokenFile,
			"--heartbeat-ttl", c.Cfg.HeartbeatTTL.String(), "--log-level", "debug"}
		if i == 0 {
			args = append(args, "--bootstrap")
		} else {
			args = append(args, "--join", c.Servers[0].URL())
		}
		s.Proc = h.Command("server", nil, args...)
		c.Servers = append(c.Servers, s)
		if err := s.Proc.Start(); err != nil {
			return err
		}
		if i == 0 {
			if err := poll(ctx, 30*time.Second, "s1 to lead", func() bool {
				l, _, err := c.ServerClient(s).Status().Leader(ctx, nil)
				return err == nil && l.ID == "s1"
			}); err != nil {
				return err
			}
		}
	}
	return poll(ctx, 30*time.Second, "all servers to join", func() bool {
		peers, _, err := c.ServerClient(c.Servers[0]).Status().Peers(ctx, nil)
		return err == nil && len(peers) == n
	})
}

// StartAgent adds host id and starts an agent on it, given the registry
// servers in that order, and returns when its node is ready.
func (c *Cluster) StartAgent(ctx context.Context, id string, registry ...*Server) (*Agent, error) {
	h, err := c.Bed.AddHost(id)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, s := range registry {
		urls = append(urls, s.URL())
	}
	a := &Agent{ID: id, Host: h, Registry: registry}
	a.Proc = h.Command("agent", nil, filepath.Join(c.Cfg.BinDir, "coexist"), "agent", "--node-id", id,
		"--registry", strings.Join(urls, ","), "--token-file", c.tokenFile, "--gateway-addr", a.Gateway(),
		"--data-dir", filepath.Join(h.Dir(), "data"), "--log-level", "debug")
	c.Agents = append(c.Agents, a)
	if err := a.Proc.Start(); err != nil {
		return nil, err
	}
	return a, poll(ctx, 30*time.Second, "node "+id+" to be ready", func() bool {
		n, _, err := c.API().Nodes().Info(ctx, id, &api.QueryOptions{AllowStale: true})
		return err == nil && n.Status == api.NodeReady
	})
}

// API is a client of the control host that knows every server.
func (c *Cluster) API() *api.Client {
	var urls []string
	for _, s := range c.Servers {
		urls = append(urls, s.URL())
	}
	cl, err := api.NewClient(&api.Config{Address: strings.Join(urls, ","), Token: c.Cfg.Token})
	if err != nil {
		panic(err) // the addresses are the bed's own
	}
	return cl
}

// ServerClient is a client of the control host that asks only s.
func (c *Cluster) ServerClient(s *Server) *api.Client {
	cl, err := api.NewClient(&api.Config{Address: s.URL(), Token: c.Cfg.Token})
	if err != nil {
		panic(err)
	}
	return cl
}

// Server returns the server of that id, or nil.
func (c *Cluster) Server(id string) *Server {
	for _, s := range c.Servers {
		if s.ID == id {
			return s
		}
	}
	return nil
}

// Leader returns the server the live servers agree leads, or nil.
func (c *Cluster) Leader(ctx context.Context) *Server {
	for _, s := range c.Servers {
		if !s.Proc.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		l, _, err := c.ServerClient(s).Status().Leader(ctx, nil)
		cancel()
		if err == nil {
			return c.Server(l.ID)
		}
	}
	return nil
}

// Greeter declares container id on node running the greeter at version
// ver.
func (c *Cluster) Greeter(ctx context.Context, id, node, ver string) (*api.Container, error) {
	req := api.ContainerRequest{Node: node, Services: []api.ServiceRef{{Service: "greeter", Version: ver}},
		Config:       api.DriverConfig{Command: filepath.Join(c.Cfg.BinDir, "greeter"), Args: []string{"--version", ver}},
		Health:       &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(200 * time.Millisecond)},
		DrainTimeout: api.Duration(5 * time.Second)}
	ct, _, err := c.API().Containers().Declare(ctx, id, req, nil)
	if err != nil {
		return nil, fmt.Errorf("declare container %s: %w", id, err)
	}
	return ct, nil
}

// poll calls cond every 100ms until it holds or d passes.
func poll(ctx context.Context, d time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", d, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
