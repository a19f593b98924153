package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// clientFlags are the flags every CLI command that talks to the registry
// takes; they default to COEXIST_ADDR, COEXIST_TOKEN and the TLS variables.
// The token is a secret flag: parseArgs fills it in.
type clientFlags struct {
	cfg *api.Config
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	c.cfg = api.DefaultConfig()
	fs.StringVar(&c.cfg.Address, "addr", c.cfg.Address, "registry URL (env COEXIST_ADDR)")
	secretVar(fs, &c.cfg.Token, "token", api.EnvToken, "ACL token")
	fs.StringVar(&c.cfg.TLS.CAFile, "ca-file", c.cfg.TLS.CAFile, "CA file to verify the registry (env COEXIST_CACERT)")
	fs.StringVar(&c.cfg.TLS.CertFile, "client-cert", c.cfg.TLS.CertFile, "client certificate (env COEXIST_CLIENT_CERT)")
	fs.StringVar(&c.cfg.TLS.KeyFile, "client-key", c.cfg.TLS.KeyFile, "client key (env COEXIST_CLIENT_KEY)")
}

func (c *clientFlags) client() (*api.Client, error) {
	return api.NewClient(c.cfg)
}

func runStatus(args []string, stdout, stderr io.Writer) int {
	var cf clientFlags
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf.register(fs)
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for answers")
	describe(fs, "[flags]", "Prints the registry's leader and peers, the services with their versions, states and\n"+
		"the containers behind each, and the counts of containers and nodes.", "COEXIST_TOKEN=... coexist status")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "status", pos) {
		return 2
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "coexist status: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := printStatus(ctx, c, stdout); err != nil {
		fmt.Fprintf(stderr, "coexist status: %v\n", err)
		if api.IsUnauthorized(err) {
			fmt.Fprintln(stderr, "hint: set COEXIST_TOKEN (or --token-file) to a valid token")
		}
		return 1
	}
	return 0
}

func printStatus(ctx context.Context, c *api.Client, w io.Writer) error {
	leader, _, err := c.Status().Leader(ctx, nil)
	if err != nil {
		return fmt.Errorf("leader: %w", err)
	}
	peers, _, err := c.Status().Peers(ctx, nil)
	if err != nil {
		return fmt.Errorf("peers: %w", err)
	}
	fmt.Fprintf(w, "Leader: %s (%s)\n\nPeers:\n", leader.ID, leader.HTTPAddr)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tRAFT\tHTTP\tSUFFRAGE\tLEADER")
	for _, p := range peers {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%v\n", p.ID, p.RaftAddr, p.HTTPAddr, p.Suffrage, p.Leader)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	services, _, err := c.Services().List(ctx, nil)
	if err != nil {
		return fmt.Errorf("services: %w", err)
	}
	containers, _, err := c.Containers().List(ctx, "", nil)
	if err != nil {
		return fmt.Errorf("containers: %w", err)
	}
	nodes, _, err := c.Nodes().List(ctx, nil)
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	versions := map[string]int{}
	for _, s := range services {
		for _, v := range s.Versions {
			versions[v.State]++
		}
	}
	running, ready := 0, 0
	for _, ct := range containers {
		if ct.Status != nil && ct.Status.State == api.ContainerRunning {
			running++
		}
	}
	for _, n := range nodes {
		if n.Status == api.NodeReady {
			ready++
		}
	}
	fmt.Fprintf(w, "\nServices:   %d (versions: %d active, %d draining, %d retired)\n", len(services),
		versions[api.VersionActive], versions[api.VersionDraining], versions[api.VersionRetired])
	fmt.Fprintf(w, "Containers: %d (%d running)\n", len(containers), running)
	fmt.Fprintf(w, "Nodes:      %d (%d ready)\n", len(nodes), ready)
	cs, _, err := c.Census().Get(ctx, nil)
	if err != nil {
		return fmt.Errorf("census: %w", err)
	}
	if err := printLagging(w, cs); err != nil {
		return err
	}
	return printVersions(w, services, containers)
}

// printLagging prints how many watchers are live and lists those behind
// the tables they watch.
func printLagging(w io.Writer, cs *api.Census) error {
	var lagging []api.Watcher
	for _, wt := range cs.Watchers {
		for _, t := range wt.Tables {
			if t.Lag > 0 {
				lagging = append(lagging, wt)
				break
			}
		}
	}
	fmt.Fprintf(w, "Watchers:   %d live (%d lagging)\n", len(cs.Watchers), len(lagging))
	if !cs.Complete {
		fmt.Fprintf(w, "Census:     incomplete, waiting for %s\n", strings.Join(cs.Missing, ", "))
	}
	if len(lagging) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nLagging watchers:")
	return printWatchers(w, lagging, true)
}
