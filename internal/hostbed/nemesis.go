package hostbed

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/hashicorp/go-hclog"
)

// Kind is a kind of fault.
type Kind string

// The faults a nemesis injects, one at a time.
const (
	// Isolate cuts one host off from every other host.
	Isolate Kind = "isolate"
	// Split cuts the hosts in two, one server on the minority side.
	Split Kind = "split"
	// OneWay drops what one host sends another.
	OneWay Kind = "one-way"
	// AgentRegistry cuts an agent off from the first server it was
	// given, the one it talks to.
	AgentRegistry Kind = "agent-registry"
	// Kill kills a server or an agent with SIGKILL; the heal restarts it.
	Kill Kind = "kill"
	// Pause stops a server (the leader, when there is one) or an agent
	// with SIGSTOP; the heal continues it.
	Pause Kind = "pause"
	// Loss drops a share of the packets that reach one host.
	Loss Kind = "loss"
	// DiskFull fills a server's data dir (a small tmpfs).
	DiskFull Kind = "disk-full"
	// Slow delays what reaches one host over new connections, and its
	// answers (a proxy of the bed's, see Bed.Slow).
	Slow Kind = "slow"
)

// AllKinds is every kind of fault; DiskFull needs ClusterConfig.DiskSize.
var AllKinds = []Kind{Isolate, Split, OneWay, AgentRegistry, Kill, Pause, Loss, DiskFull, Slow}

// Fault is one fault of a schedule: At after the start, for For.
type Fault struct {
	At, For time.Duration
	Kind    Kind
	Target  string        // a host
	Peer    string        // OneWay: the host whose packets are dropped
	Side    []string      // Split: the minority side
	Percent int           // Loss
	Delay   time.Duration // Slow
}

func (f Fault) String() string {
	s := fmt.Sprintf("t+%-6s %-14s %s", f.At.Round(100*time.Millisecond), f.Kind, f.Target)
	switch f.Kind {
	case OneWay:
		s = fmt.Sprintf("t+%-6s %-14s %s -x-> %s", f.At.Round(100*time.Millisecond), f.Kind, f.Peer, f.Target)
	case Split:
		s = fmt.Sprintf("t+%-6s %-14s %s | rest", f.At.Round(100*time.Millisecond), f.Kind, strings.Join(f.Side, ","))
	case Loss:
		s += fmt.Sprintf(" %d%%", f.Percent)
	case Slow:
		s += fmt.Sprintf(" +%s", f.Delay)
	}
	return s + fmt.Sprintf(" for %s", f.For.Round(100*time.Millisecond))
}

// Roles names the hosts of a cluster by what runs on them.
type Roles struct {
	Servers, Agents, Clients []string
	// Registry is, by agent, the first server it was given.
	Registry map[string]string
	// Spare are hosts that no network fault (isolate, split minority,
	// one-way, loss) and no pause picks; kill and agent-registry still may.
	Spare []string
}

// NewSchedule draws faults for d from seed: each lasts 2 to 8 s and follows
// a quiet gap of 3 to 6 s, so that every heal is followed by time to
// converge. The same seed, roles and kinds give the same schedule.
func NewSchedule(seed uint64, d time.Duration, roles Roles, kinds []Kind) []Fault {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }
	var out []Fault
	at := 5 * time.Second
	for {
		f := Fault{At: at, For: between(2*time.Second, 8*time.Second), Kind: kinds[rng.IntN(len(kinds))]}
		if at+f.For > d {
			return out
		}
		hosts := spare(append(append(slices.Clone(roles.Servers), roles.Agents...), roles.Clients...), roles.Spare)
		switch f.Kind {
		case Isolate:
			f.Target = pick(hosts)
		case Split:
			// The minority: one server, and each agent and client
			// with one chance in three.
			f.Side = []string{pick(roles.Servers)}
			for _, h := range spare(append(slices.Clone(roles.Agents), roles.Clients...), roles.Spare) {
				if rng.IntN(3) == 0 {
					f.Side = append(f.Side, h)
				}
			}
			f.Target = f.Side[0]
		case OneWay:
			f.Target = pick(hosts)
			for f.Peer = pick(hosts); f.Peer == f.Target; f.Peer = pick(hosts) {
			}
		case AgentRegistry:
			f.Target = pick(roles.Agents)
			f.Peer = roles.Registry[f.Target]
		case Kill:
			f.Target = pick(append(slices.Clone(roles.Servers), roles.Agents...))
		case Pause:
			f.Target = pick(spare(append(slices.Clone(roles.Servers), roles.Agents...), roles.Spare))
			if f.Kind == Pause && rng.IntN(2) == 0 {
				f.Target = "leader"
			}
		case Loss:
			f.Target = pick(hosts)
			f.Percent = 10 + rng.IntN(21)
		case DiskFull:
			f.Target = pick(roles.Servers)
		case Slow:
			f.Target = pick(hosts)
			f.Delay = time.Duration(50+rng.IntN(251)) * time.Millisecond
		}
		out = append(out, f)
		at += f.For + between(3*time.Second, 6*time.Second)
	}
}

// spare returns hosts without those in out.
func spare(hosts, out []string) []string {
	return slices.DeleteFunc(hosts, func(h string) bool { return slices.Contains(out, h) })
}

// Window is a fault as it happened: when it began and was healed, and how
// long the cluster took to converge after the heal (-1: it did not within
// the bound).
type Window struct {
	Fault
	Start, Healed time.Time
	Converged     time.Duration
	// CutOff are the client hosts that could reach no agent meanwhile:
	// their calls may fail.
	CutOff []string
	Err    string
}

// Nemesis runs a schedule on a cluster.
type Nemesis struct {
	C   *Cluster
	Log hclog.Logger
	// ConvergeWithin bounds the wait for convergence after each heal.
	ConvergeWithin time.Duration
}

// Run applies each fault of sched at its time, heals it, and waits for the
// cluster to converge before the next; a fault whose time has passed
// (convergence took long) starts at once. It returns the windows.
func (n *Nemesis) Run(ctx context.Context, sched []Fault) []Window {
	start := time.Now()
	var out []Window
	for _, f := range sched {
		select {
		case <-ctx.Done():
			return out
		case <-time.After(time.Until(start.Add(f.At))):
		}
		w := Window{Fault: f, Start: time.Now()}
		undo, cutOff, err := n.apply(ctx, f)
		w.CutOff = cutOff
		if err != nil {
			w.Err = err.Error()
			n.Log.Error("fault failed", "fault", f.String(), "error", err)
		} else {
			n.Log.Info("fault", "virtual", f.At, "late", time.Since(start.Add(f.At)).Round(time.Millisecond), "fault", f.String())
		}
		select {
		case <-ctx.Done():
		case <-time.After(f.For):
		}
		if undo != nil {
			if err := undo(); err != nil {
				w.Err += " heal: " + err.Error()
				n.Log.Error("heal failed", "fault", f.String(), "error", err)
			}
		}
		w.Healed = time.Now()
		w.Converged = n.converge(ctx)
		n.Log.Info("healed", "virtual", f.At+f.For, "fault", string(f.Kind), "target", f.Target, "converged_in", w.Converged.Round(time.Millisecond))
		out = append(out, w)
	}
	return out
}

// apply injects f and returns what undoes it and the clients it cuts off
// from every agent.
func (n *Nemesis) apply(ctx context.Context, f Fault) (func() error, []string, error) {
	b := n.C.Bed
	host := func(name string) *Host { return b.Host(name) }
	clients := n.clientHosts()
	heal := b.Heal
	switch f.Kind {
	case Isolate:
		var cut []string
		if slices.Contains(clients, f.Target) {
			cut = []string{f.Target}
		}
		return heal, cut, b.Isolate(host(f.Target))
	case Split:
		var side1, side2 []*Host
		for _, h := range b.Hosts() {
			if slices.Contains(f.Side, h.Name) {
				side1 = append(side1, h)
			} else {
				side2 = append(side2, h)
			}
		}
		var cut []string
		for _, c := range clients {
			onMinority := slices.Contains(f.Side, c)
			reach := false
			for _, a := range n.C.Agents {
				if slices.Contains(f.Side, a.ID) == onMinority {
					reach = true
				}
			}
			if !reach {
				cut = append(cut, c)
			}
		}
		return heal, cut, b.Split(side1, side2)
	case OneWay:
		// A client cut from one agent still reaches the others.
		return heal, nil, b.Cut(host(f.Peer), host(f.Target))
	case AgentRegistry:
		a, s := host(f.Target), host(f.Peer)
		if err := b.Cut(a, s); err != nil {
			return heal, nil, err
		}
		return heal, nil, b.Cut(s, a)
	case Loss:
		return heal, nil, b.Loss(host(f.Target), f.Percent)
	case Kill:
		p := n.proc(f.Target)
		p.Kill()
		return p.Start, nil, nil
	case Pause:
		target := f.Target
		if target == "leader" {
			if l := n.C.Leader(ctx); l != nil {
				target = l.ID
			} else {
				target = n.C.Servers[0].ID
			}
		}
		p := n.proc(target)
		n.Log.Info("pausing", "host", target)
		return p.Resume, nil, p.Pause()
	case Slow:
		h := host(f.Target)
		return func() error { return b.Slow(h, 0) }, nil, b.Slow(h, f.Delay)
	case DiskFull:
		s := n.C.Server(f.Target)
		if n.C.Cfg.DiskSize <= 0 {
			return nil, nil, fmt.Errorf("disk-full: the servers have no small disk (ClusterConfig.DiskSize)")
		}
		return func() error { return Unfill(s.DataDir) }, nil, Fill(s.DataDir)
	}
	return nil, nil, fmt.Errorf("unknown fault kind %q", f.Kind)
}

func (n *Nemesis) clientHosts() []string {
	var out []string
	for _, h := range n.C.Bed.Hosts() {
		if n.C.Server(h.Name) == nil && n.C.Agent(h.Name) == nil {
			out = append(out, h.Name)
		}
	}
	return out
}

func (n *Nemesis) proc(host string) *Proc {
	if s := n.C.Server(host); s != nil {
		return s.Proc
	}
	return n.C.Agent(host).Proc
}

// converge waits until every server process runs and agrees on a leader and
// every node is ready; it returns how long that took, or -1.
func (n *Nemesis) converge(ctx context.Context) time.Duration {
	start := time.Now()
	err := poll(ctx, n.ConvergeWithin, "convergence", func() bool { return n.C.Converged(ctx) == nil })
	if err != nil {
		n.Log.Warn("did not converge", "within", n.ConvergeWithin, "why", n.C.Converged(ctx))
		return -1
	}
	return time.Since(start)
}

// Converged returns nil when every server agrees on one leader and every
// agent's node is ready, else what is missing.
func (c *Cluster) Converged(ctx context.Context) error {
	var leader string
	for _, s := range c.Servers {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		l, _, err := c.ServerClient(s).Status().Leader(qctx, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", s.ID, err)
		}
		if leader != "" && l.ID != leader {
			return fmt.Errorf("%s says %s leads, another %s", s.ID, l.ID, leader)
		}
		leader = l.ID
	}
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	nodes, _, err := c.API().Nodes().List(qctx, nil)
	if err != nil {
		return fmt.Errorf("nodes: %w", err)
	}
	ready := 0
	for _, nd := range nodes {
		if nd.Status == api.NodeReady {
			ready++
		}
	}
	if ready != len(c.Agents) {
		return fmt.Errorf("%d of %d nodes ready", ready, len(c.Agents))
	}
	return nil
}

// Agent returns the agent of that id, or nil.
func (c *Cluster) Agent(id string) *Agent {
	for _, a := range c.Agents {
		if a.ID == id {
			return a
		}
	}
	return nil
}
