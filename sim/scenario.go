package sim

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	version "github.com/hashicorp/go-version"
)

// Pos is where something was written in a scenario file; the zero Pos is a
// scenario built in Go.
type Pos struct {
	File      string
	Line, Col int
}

func (p Pos) String() string {
	if p.File == "" && p.Line == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Scenario is a fleet and what happens to it: the initial nodes, service
// versions, containers and client cohorts, then steps at virtual times.
// Build one with New and its methods, or read one with ParseFile; Validate
// says what is wrong with it.
type Scenario struct {
	Name        string
	Description string
	Pos         Pos

	// Duration is the virtual time the run lasts; 0: until the convergence
	// bound after the last step, and ten seconds more.
	Duration time.Duration
	// ConvergeWithin bounds the time from the last change (step or end of a
	// fault) to convergence.
	ConvergeWithin time.Duration
	// Warmup is when cohorts start calling (unless they say otherwise), so
	// that the initial fleet can start first.
	Warmup time.Duration
	// FaultSettle is how long after an injected fault calls may still fail
	// on its account (see Windows); 0: derived from the settings.
	FaultSettle time.Duration

	Network  NetworkSettings
	Registry RegistrySettings
	Agent    AgentSettings

	Nodes       []NodeSpec
	Versions    []VersionSpec   // declared at time 0
	Containers  []ContainerSpec // declared at time 0
	Cohorts     []CohortSpec
	ReleaseSets []ReleaseSet
	Steps       []Step

	// file is what Parse knows of the file the scenario came from; nil for
	// a scenario built in Go.
	file *fileInfo
}

// fileInfo is where a scenario file wrote what, for problems that point at
// an attribute, and what it left incomplete, so that Validate does not
// report again, as a problem of its own, what the decoder already reported.
type fileInfo struct {
	// attrs maps a block's position to its attributes' positions.
	attrs map[Pos]map[string]Pos
	// blocks holds the positions of the settings blocks: "network",
	// "registry" and "agent".
	blocks map[string]Pos
	// bad holds, per block, the attributes the decoder reported: a value
	// it could not read, or a required one missing.
	bad map[Pos]map[string]bool
	// partial names the kinds of thing ("node", "container", "version")
	// of which a bad block may have left some out: references to them
	// are not checked.
	partial map[string]bool
}

// NetworkSettings model the network between clients, gateways and the
// registry.
type NetworkSettings struct {
	// Latency is one way, per message.
	Latency Dist
	// Loss is the probability that a connection attempt from a client to a
	// gateway fails (a connection never made, safe to retry).
	Loss float64
	// DialTimeout is how long a failed connection attempt takes to fail.
	DialTimeout time.Duration
}

// RegistrySettings model the registry cluster.
type RegistrySettings struct {
	// CommitLatency is the time from a write reaching the leader to its
	// commit (Raft round trips and fsync).
	CommitLatency Dist
	// PublishInterval coalesces commits: watchers are answered with the
	// committed state at most once per interval.
	PublishInterval time.Duration
	// Propagation is a client watcher's delay behind a publication, sampled
	// once per client; NodePropagation is an agent's.
	Propagation     Dist
	NodePropagation Dist
	// HeartbeatTTL and RetireInterval are the leader's (raftregistry.Config).
	HeartbeatTTL   time.Duration
	RetireInterval time.Duration
}

// AgentSettings model the node agents and their driver.
type AgentSettings struct {
	// StartTime is from a start to the process listening; HealthDelay from
	// there to its first passing health check; StopTime from SIGTERM to
	// exit (cut at KillTimeout).
	StartTime   Dist
	HealthDelay Dist
	StopTime    Dist
	// The reconciler's timings (reconcile.PlanConfig).
	StartTimeout           time.Duration
	KillTimeout            time.Duration
	RestartDelay           time.Duration
	RestartMaxDelay        time.Duration
	RestartAttempts        int
	InflightReportInterval time.Duration
	// HeartbeatInterval is how often a node heartbeats; ReconcileInterval
	// how often an agent with a container in motion plans again.
	HeartbeatInterval time.Duration
	ReconcileInterval time.Duration
	// ReportTimeout is how long a status report that cannot reach the
	// registry takes to fail.
	ReportTimeout time.Duration
	// ServiceTime is how long a container works on a call, unless its
	// version says otherwise.
	ServiceTime Dist
}

// NodeSpec is one node.
type NodeSpec struct {
	ID  string
	Pos Pos
}

// VersionSpec is a service version: its client range and how its
// containers behave in the simulation.
type VersionSpec struct {
	Service string
	Version string
	Clients string
	// ServiceTime overrides the agent's; the zero Dist keeps it.
	ServiceTime Dist
	// FailsHealth: its containers start but never pass a health check.
	FailsHealth bool
	// CrashesAfter: its containers' processes crash this long after each
	// time they become healthy, until their agent has used up its restarts
	// and reports them failed for good; the zero Dist: never.
	CrashesAfter Dist
	// Calls are services that serving a call of this version calls in
	// turn, as a client named after this service at this version.
	Calls []string
	Pos   Pos
}

// Ref is "service@version".
func (v VersionSpec) Ref() string { return v.Service + "@" + v.Version }

// ContainerSpec is one container: its node and the service versions it
// holds, written "service@version".
type ContainerSpec struct {
	ID           string
	Node         string
	Services     []string
	DrainTimeout time.Duration // 0: the registry's default, 30s
	Pos          Pos
}

// CohortSpec is a group of clients of one name.
type CohortSpec struct {
	Name    string
	Clients int
	// Version is every client's version at the start; MoveCohort changes
	// it for some of them.
	Version string
	// Requires is the clients' own range per service.
	Requires map[string]string
	// Calls are the services the clients call, one picked at random per
	// call.
	Calls []string
	// Rate is calls per second per client.
	Rate float64
	// Deadline bounds a call and its retries (the SDK's RetryTimeout).
	Deadline time.Duration
	// OnNodes places the clients on the nodes, round robin, for own-node
	// preference; otherwise they run outside the fleet.
	OnNodes bool
	// Start is when the cohort starts calling; 0: the scenario's Warmup.
	Start time.Duration
	// ExpectUnserved says the scenario means no version to serve the
	// cohort: its failed calls with nothing on offer are judged, not
	// unjudged, and Warnings does not name it.
	ExpectUnserved bool
	Pos            Pos
}

// ReleaseSet is a set of service versions released together: a call chain
// that starts in a set must stay in it.
type ReleaseSet struct {
	Name    string
	Members []string // service@version
	Pos     Pos
}

// Step is what happens at one virtual time, in order.
type Step struct {
	At      time.Duration
	Actions []Action
	Pos     Pos
}

// Action is one change a step makes.
type Action interface {
	// Describe says what the action does, for traces and reports.
	Describe() string
	position() Pos
}

// DeclareVersion declares a service version (again: a range change, a drain
// cancelled or a rollback). Force says the step means a narrowing even if
// it strands a live cohort; without it the registry refuses such a step
// (docs/design.md §5) and the summary lists the refusal.
type DeclareVersion struct {
	VersionSpec
	Force bool
}

// RetireVersion starts retiring a service version. Force says the step
// means it even if it strands a live cohort: the failed calls of a cohort
// left with nothing to call then count as stranded by force; without it
// the registry refuses a step that would strand one (docs/design.md §5)
// and the summary lists the refusal.
type RetireVersion struct {
	Service, Version string
	Force            bool
	Pos              Pos
}

// AddContainer declares a container.
type AddContainer struct{ ContainerSpec }

// RemoveContainer deletes a container: its agent drains and stops it.
type RemoveContainer struct {
	ID  string
	Pos Pos
}

// MoveCohort moves some clients of a cohort to another version: a Fraction
// of the cohort's clients, or Count of them, the first in order that are not
// on Version yet.
type MoveCohort struct {
	Cohort   string
	Version  string
	Fraction float64
	Count    int
	Pos      Pos
}

// SetRate changes a cohort's calls per second per client.
type SetRate struct {
	Cohort string
	Rate   float64
	Pos    Pos
}

// CrashNode crashes a node: its agent, gateway and containers die.
type CrashNode struct {
	Node string
	Pos  Pos
}

// RestoreNode brings a crashed node back: its agent starts again, finds its
// containers dead and starts them.
type RestoreNode struct {
	Node string
	Pos  Pos
}

// CrashContainer kills one container's process; its agent restarts it.
type CrashContainer struct {
	ID  string
	Pos Pos
}

// Partition cuts the network between two groups of endpoints until Heal.
// An endpoint is "registry", "nodes", "clients", "node:ID" or
// "cohort:NAME".
type Partition struct {
	Name string
	A, B []string
	Pos  Pos
}

// Heal ends a partition.
type Heal struct {
	Name string
	Pos  Pos
}

// LoseLeader loses the registry's leader for a while: writes stall and
// commit once a new leader is elected; heartbeats are not heard.
type LoseLeader struct {
	For time.Duration
	Pos Pos
}

// SetNetwork changes the network's latency and loss from now on; nil keeps
// the current value.
type SetNetwork struct {
	Latency *Dist
	Loss    *float64
	Pos     Pos
}

func (a DeclareVersion) Describe() string {
	if a.Force {
		return fmt.Sprintf("declare %s clients %q (forced)", a.Ref(), a.Clients)
	}
	return fmt.Sprintf("declare %s clients %q", a.Ref(), a.Clients)
}
func (a RetireVersion) Describe() string {
	if a.Force {
		return "retire " + a.Service + "@" + a.Version + " (forced)"
	}
	return "retire " + a.Service + "@" + a.Version
}
func (a AddContainer) Describe() string {
	return "add container " + a.ID + " on " + a.Node + " holding " + strings.Join(a.Services, ",")
}
func (a RemoveContainer) Describe() string { return "remove container " + a.ID }
func (a MoveCohort) Describe() string {
	if a.Count > 0 {
		return fmt.Sprintf("move %d clients of %s to %s", a.Count, a.Cohort, a.Version)
	}
	return fmt.Sprintf("move %g%% of %s to %s", a.Fraction*100, a.Cohort, a.Version)
}
func (a SetRate) Describe() string        { return fmt.Sprintf("set rate of %s to %g/s", a.Cohort, a.Rate) }
func (a CrashNode) Describe() string      { return "crash node " + a.Node }
func (a RestoreNode) Describe() string    { return "restore node " + a.Node }
func (a CrashContainer) Describe() string { return "crash container " + a.ID }
func (a Partition) Describe() string {
	return fmt.Sprintf("partition %s: %s | %s", a.Name, strings.Join(a.A, ","), strings.Join(a.B, ","))
}
func (a Heal) Describe() string       { return "heal " + a.Name }
func (a LoseLeader) Describe() string { return "lose the registry leader for " + a.For.String() }
func (a SetNetwork) Describe() string {
	var parts []string
	if a.Latency != nil {
		parts = append(parts, "latency "+a.Latency.String())
	}
	if a.Loss != nil {
		parts = append(parts, "loss "+strconv.FormatFloat(*a.Loss, 'g', -1, 64))
	}
	return "set network " + strings.Join(parts, ", ")
}

func (a DeclareVersion) position() Pos  { return a.Pos }
func (a RetireVersion) position() Pos   { return a.Pos }
func (a AddContainer) position() Pos    { return a.Pos }
func (a RemoveContainer) position() Pos { return a.Pos }
func (a MoveCohort) position() Pos      { return a.Pos }
func (a SetRate) position() Pos         { return a.Pos }
func (a CrashNode) position() Pos       { return a.Pos }
func (a RestoreNode) position() Pos     { return a.Pos }
func (a CrashContainer) position() Pos  { return a.Pos }
func (a Partition) position() Pos       { return a.Pos }
func (a Heal) position() Pos            { return a.Pos }
func (a LoseLeader) position() Pos      { return a.Pos }
func (a SetNetwork) position() Pos      { return a.Pos }

// New returns an empty scenario with the default settings.
func New(name string) *Scenario {
	return &Scenario{
		Name:           name,
		ConvergeWithin: 60 * time.Second,
		Warmup:         10 * time.Second,
		Network: NetworkSettings{
			Latency:     Uniform(200*time.Microsecond, 2*time.Millisecond),
			DialTimeout: 50 * time.Millisecond,
		},
		Registry: RegistrySettings{
			CommitLatency:   Uniform(2*time.Millisecond, 15*time.Millisecond),
			PublishInterval: 20 * time.Millisecond,
			Propagation:     Uniform(2*time.Millisecond, 50*time.Millisecond),
			NodePropagation: Uniform(2*time.Millisecond, 50*time.Millisecond),
			HeartbeatTTL:    10 * time.Second,
			RetireInterval:  time.Second,
		},
		Agent: AgentSettings{
			StartTime:         Uniform(200*time.Millisecond, 1500*time.Millisecond),
			HealthDelay:       Uniform(10*time.Millisecond, 200*time.Millisecond),
			StopTime:          Uniform(5*time.Millisecond, 200*time.Millisecond),
			StartTimeout:      30 * time.Second,
			KillTimeout:       5 * time.Second,
			RestartDelay:      time.Second,
			RestartMaxDelay:   30 * time.Second,
			RestartAttempts:   5,
			HeartbeatInterval: 2 * time.Second,
			ReconcileInterval: time.Second,
			ReportTimeout:     time.Second,
			ServiceTime:       Uniform(time.Millisecond, 20*time.Millisecond),
		},
	}
}

// AddNodes adds nodes prefix-1 … prefix-n.
func (s *Scenario) AddNodes(prefix string, n int) *Scenario {
	for i := 1; i <= n; i++ {
		s.Nodes = append(s.Nodes, NodeSpec{ID: fmt.Sprintf("%s-%d", prefix, i)})
	}
	return s
}

// Declare declares service versions at time 0.
func (s *Scenario) Declare(vs ...VersionSpec) *Scenario {
	s.Versions = append(s.Versions, vs...)
	return s
}

// Version declares one service version at time 0.
func (s *Scenario) Version(service, version, clients string) *Scenario {
	return s.Declare(VersionSpec{Service: service, Version: version, Clients: clients})
}

// Container declares containers at time 0.
func (s *Scenario) Container(cs ...ContainerSpec) *Scenario {
	s.Containers = append(s.Containers, cs...)
	return s
}

// ContainerGroup declares containers prefix-1 … prefix-n at time 0, placed
// round robin on nodes (every node when nodes is empty), each holding
// services.
func (s *Scenario) ContainerGroup(prefix string, n int, nodes []string, services ...string) *Scenario {
	return s.Container(s.Group(prefix, n, nodes, services...)...)
}

// Group returns the specs of containers prefix-1 … prefix-n placed round
// robin on nodes (every node of the scenario so far when nodes is empty).
func (s *Scenario) Group(prefix string, n int, nodes []string, services ...string) []ContainerSpec {
	if len(nodes) == 0 {
		for _, nd := range s.Nodes {
			nodes = append(nodes, nd.ID)
		}
	}
	out := make([]ContainerSpec, 0, n)
	for i := 1; i <= n; i++ {
		node := ""
		if len(nodes) > 0 {
			node = nodes[(i-1)%len(nodes)]
		}
		out = append(out, ContainerSpec{ID: fmt.Sprintf("%s-%d", prefix, i), Node: node, Services: slices.Clone(services)})
	}
	return out
}

// Cohort adds a client cohort; zero Rate and Deadline take 1/s and 2s.
func (s *Scenario) Cohort(c CohortSpec) *Scenario {
	if c.Rate == 0 {
		c.Rate = 1
	}
	if c.Deadline == 0 {
		c.Deadline = 2 * time.Second
	}
	s.Cohorts = append(s.Cohorts, c)
	return s
}

// Release adds a release set.
func (s *Scenario) Release(name string, members ...string) *Scenario {
	s.ReleaseSets = append(s.ReleaseSets, ReleaseSet{Name: name, Members: members})
	return s
}

// At adds a step.
func (s *Scenario) At(at time.Duration, actions ...Action) *Scenario {
	s.Steps = append(s.Steps, Step{At: at, Actions: actions})
	return s
}

// AddGroup returns the actions adding containers prefix-1 … prefix-n, as
// Group places them.
func (s *Scenario) AddGroup(prefix string, n int, nodes []string, services ...string) []Action {
	var out []Action
	for _, c := range s.Group(prefix, n, nodes, services...) {
		out = append(out, AddContainer{c})
	}
	return out
}

// RemoveGroup returns the actions removing containers prefix-1 … prefix-n.
func RemoveGroup(prefix string, n int) []Action {
	var out []Action
	for i := 1; i <= n; i++ {
		out = append(out, RemoveContainer{ID: fmt.Sprintf("%s-%d", prefix, i)})
	}
	return out
}

// lastChange is the time of the last step.
func (s *Scenario) lastStep() time.Duration {
	var t time.Duration
	for _, st := range s.Steps {
		t = max(t, st.At)
	}
	return t
}

// ValidationError lists what is wrong with a scenario, each problem with its
// position when the scenario came from a file.
type ValidationError struct {
	Problems []Problem
}

// Problem is one thing wrong with a scenario.
type Problem struct {
	Pos     Pos
	Message string
}

func (p Problem) String() string {
	if s := p.Pos.String(); s != "" {
		return s + ": " + p.Message
	}
	return p.Message
}

func (e *ValidationError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// splitRef splits "service@version".
func splitRef(ref string) (string, string, bool) {
	i := strings.LastIndexByte(ref, '@')
	if i <= 0 || i == len(ref)-1 {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}

// Warnings lists what is valid but likely a mistake: a cohort that calls a
// service no version ever admits it to (by any range any declaration
// gives, at any version the cohort is ever moved to), unless the cohort
// says expect_unserved. Its calls would all fail, as unjudged failures.
func (s *Scenario) Warnings() []Problem {
	decls := slices.Clone(s.Versions)
	for _, st := range s.Steps {
		for _, a := range st.Actions {
			if d, ok := a.(DeclareVersion); ok {
				decls = append(decls, d.VersionSpec)
			}
		}
	}
	var out []Problem
	for _, c := range s.Cohorts {
		if c.ExpectUnserved {
			continue
		}
		vers := []string{c.Version}
		for _, st := range s.Steps {
			for _, a := range st.Actions {
				if m, ok := a.(MoveCohort); ok && m.Cohort == c.Name && !slices.Contains(vers, m.Version) {
					vers = append(vers, m.Version)
				}
			}
		}
		for _, cv := range vers {
			caller, err := version.NewVersion(cv)
			if err != nil {
				continue
			}
			for _, svc := range c.Calls {
				if !admittedEver(decls, svc, caller, c.Requires[svc]) {
					out = append(out, Problem{Pos: c.Pos, Message: fmt.Sprintf("cohort %q at %s calls %s, which no version ever admits: "+
						"every such call fails; say expect_unserved = true if the scenario means it", c.Name, cv, svc)})
				}
			}
		}
	}
	return out
}

// admittedEver reports whether a declaration of svc admits caller and
// meets its requirement req ("" for none).
func admittedEver(decls []VersionSpec, svc string, caller *version.Version, req string) bool {
	var rc version.Constraints
	if req != "" {
		var err error
		if rc, err = version.NewConstraint(req); err != nil {
			return true // reported by Validate
		}
	}
	for _, d := range decls {
		if d.Service != svc {
			continue
		}
		cons, err := version.NewConstraint(d.Clients)
		if err != nil || !cons.Check(caller) {
			continue
		}
		if rc != nil {
			v, err := version.NewVersion(d.Version)
			if err != nil || !rc.Check(v) {
				continue
			}
		}
		return true
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
