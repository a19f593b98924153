package state

import (
	"maps"
	"slices"
	"time"
)

// Table names one table of the store; every table has its own index.
type Table uint8

// The tables.
const (
	TableNodes Table = iota
	TableServices
	TableContainers
	TableTokens
	TableServers
	numTables
)

var tableNames = [numTables]string{"nodes", "services", "containers", "tokens", "servers"}

func (t Table) String() string {
	if t < numTables {
		return tableNames[t]
	}
	return "unknown"
}

// Tables lists every table, in order.
func Tables() []Table {
	return []Table{TableNodes, TableServices, TableContainers, TableTokens, TableServers}
}

// Node is a registered host.
type Node struct {
	ID          string            `json:"id"`
	Address     string            `json:"address"`
	Gateway     string            `json:"gateway"`
	Labels      map[string]string `json:"labels,omitempty"`
	Status      string            `json:"status"`
	CreateIndex uint64            `json:"create_index"`
	ModifyIndex uint64            `json:"modify_index"`
}

// VersionKey names one service version.
type VersionKey struct {
	Service string `json:"service"`
	Version string `json:"version"`
}

func (k VersionKey) String() string { return k.Service + "@" + k.Version }

// ServiceVersion is a declared version of a service.
type ServiceVersion struct {
	Service        string     `json:"service"`
	Version        string     `json:"version"`
	Clients        string     `json:"clients"`
	Description    string     `json:"description,omitempty"`
	State          string     `json:"state"`
	DrainStartedAt *time.Time `json:"drain_started_at,omitempty"`
	RetiredAt      *time.Time `json:"retired_at,omitempty"`
	CreateIndex    uint64     `json:"create_index"`
	ModifyIndex    uint64     `json:"modify_index"`
}

// Key returns the version's key.
func (v *ServiceVersion) Key() VersionKey { return VersionKey{v.Service, v.Version} }

// ContainerSpec is the desired part of a container that an operator declares.
type ContainerSpec struct {
	Name         string            `json:"name,omitempty"`
	Node         string            `json:"node"`
	Services     []VersionKey      `json:"services"`
	Driver       string            `json:"driver"`
	Command      string            `json:"command"`
	Image        string            `json:"image,omitempty"`
	Args         []string          `json:"args,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Health       *HealthCheck      `json:"health,omitempty"`
	Restart      *RestartPolicy    `json:"restart,omitempty"`
	DrainTimeout time.Duration     `json:"drain_timeout"`
	Resources    *Resources        `json:"resources,omitempty"`
}

// Resources is the persisted form of a container's limits, as written
// (validated by api.ParseMemory and api.ParseCPU).
type Resources struct {
	Memory string `json:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// HealthCheck is the persisted form of a health check.
type HealthCheck struct {
	HTTP     string        `json:"http,omitempty"`
	TCP      bool          `json:"tcp,omitempty"`
	Interval time.Duration `json:"interval"`
	Timeout  time.Duration `json:"timeout"`
}

// RestartPolicy is the persisted form of a restart policy.
type RestartPolicy struct {
	Attempts int           `json:"attempts"`
	Interval time.Duration `json:"interval,omitempty"`
	Delay    time.Duration `json:"delay"`
	MaxDelay time.Duration `json:"max_delay"`
}

// Equal reports whether two specs are the same declaration: the same name,
// the same thing run the same way.
func (s *ContainerSpec) Equal(o *ContainerSpec) bool {
	if s.Name != o.Name || s.RunChange(o) != "" || s.DrainTimeout != o.DrainTimeout {
		return false
	}
	return (s.Restart == nil) == (o.Restart == nil) && (s.Restart == nil || *s.Restart == *o.Restart)
}

// RunChange names the first field in which o would run something else than
// s (another node, service set, driver, command, image, arguments,
// environment, health check or resource limits), or "" when both run the
// same thing. Fields outside it
// (drain_timeout, restart) change how the agent supervises the process, not
// the process.
func (s *ContainerSpec) RunChange(o *ContainerSpec) string {
	switch {
	case s.Node != o.Node:
		return "node"
	case !slices.Equal(s.Services, o.Services):
		return "services"
	case s.Driver != o.Driver:
		return "driver"
	case s.Command != o.Command:
		return "config.command"
	case s.Image != o.Image:
		return "config.image"
	case !slices.Equal(s.Args, o.Args):
		return "config.args"
	case len(s.Env) != len(o.Env) || !maps.Equal(s.Env, o.Env):
		return "config.env"
	case (s.Health == nil) != (o.Health == nil) || (s.Health != nil && *s.Health != *o.Health):
		return "health"
	case (s.Resources == nil) != (o.Resources == nil) || (s.Resources != nil && *s.Resources != *o.Resources):
		return "resources"
	}
	return ""
}

// Holds reports whether the spec holds the given service version.
func (s *ContainerSpec) Holds(k VersionKey) bool {
	return slices.Contains(s.Services, k)
}

// Container is one supervised unit on one node: its desired spec and state,
// and what its agent last reported.
type Container struct {
	ID          string           `json:"id"`
	Spec        ContainerSpec    `json:"spec"`
	Desired     string           `json:"desired"`
	Status      *ContainerStatus `json:"status,omitempty"`
	CreateIndex uint64           `json:"create_index"`
	ModifyIndex uint64           `json:"modify_index"`
}

// ContainerStatus is the observed state an agent reports.
type ContainerStatus struct {
	State     string          `json:"state"`
	Endpoint  string          `json:"endpoint,omitempty"`
	PID       int             `json:"pid,omitempty"`
	StartedAt *time.Time      `json:"started_at,omitempty"`
	Services  []ServiceStatus `json:"services,omitempty"`
	Restarts  int             `json:"restarts,omitempty"`
	Message   string          `json:"message,omitempty"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// ServiceStatus is the observed state of one version inside a container.
type ServiceStatus struct {
	Service  string `json:"service"`
	Version  string `json:"version"`
	State    string `json:"state"`
	Inflight int    `json:"inflight"`
	// CallsPerMinute is for display only: a report that changes nothing
	// else keeps the container's modify index (displayOnly).
	CallsPerMinute int `json:"calls_per_minute,omitempty"`
}

// sameReport reports whether two statuses say the same, ignoring when they
// were recorded.
func (s *ContainerStatus) sameReport(o *ContainerStatus) bool {
	if s == nil || o == nil {
		return s == o
	}
	if s.State != o.State || s.Endpoint != o.Endpoint || s.PID != o.PID ||
		s.Restarts != o.Restarts || s.Message != o.Message || !slices.Equal(s.Services, o.Services) {
		return false
	}
	if (s.StartedAt == nil) != (o.StartedAt == nil) || (s.StartedAt != nil && !s.StartedAt.Equal(*o.StartedAt)) {
		return false
	}
	return true
}

// displayOnly reports whether two statuses differ at most in their calls per
// minute, figures for display: such a report is recorded without bumping the
// container's modify index, so the record's history and anything that reads
// "changed since" from it (docs/design.md §6) ignore it.
func (s *ContainerStatus) displayOnly(o *ContainerStatus) bool {
	if s == nil || o == nil || len(s.Services) != len(o.Services) {
		return false
	}
	x, y := *s, *o
	x.Services, y.Services = withoutCallsPerMinute(s.Services), withoutCallsPerMinute(o.Services)
	return x.sameReport(&y)
}

func withoutCallsPerMinute(ss []ServiceStatus) []ServiceStatus {
	out := slices.Clone(ss)
	for i := range out {
		out[i].CallsPerMinute = 0
	}
	return out
}

// serviceState returns the reported state of k inside the container, or ""
// when the report does not mention it.
func (s *ContainerStatus) serviceState(k VersionKey) string {
	if s == nil {
		return ""
	}
	for _, ss := range s.Services {
		if ss.Service == k.Service && ss.Version == k.Version {
			return ss.State
		}
	}
	return ""
}

// Token is an ACL token; only the SHA-256 of its secret is kept.
type Token struct {
	AccessorID  string `json:"accessor_id"`
	SecretHash  string `json:"secret_hash"`
	Role        string `json:"role"`
	Node        string `json:"node,omitempty"`
	Description string `json:"description,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// Server is a registry server's HTTP address, so that followers can forward
// to the leader.
type Server struct {
	ID          string `json:"id"`
	HTTPAddr    string `json:"http_addr"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}
