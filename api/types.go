// Package api holds the wire types of the coexist registry's HTTP API (v1) and
// a Go client for it.
//
// It is a leaf: it imports only the standard library and hashicorp/go-version.
// The registry's persisted (FSM) types live in raftregistry/state; a change to
// those is never silently a change to these.
package api

import (
	"encoding/json"
	"fmt"
	"time"
)

// Node states.
const (
	NodeReady = "ready"
	NodeDown  = "down"
)

// Service version states.
const (
	VersionActive   = "active"
	VersionDraining = "draining"
	VersionRetired  = "retired"
)

// Desired states of a container.
const (
	DesiredPresent = "present"
	DesiredDeleted = "deleted"
)

// Observed states of a container, as its agent reports them.
const (
	ContainerStarting = "starting"
	ContainerRunning  = "running"
	ContainerDraining = "draining"
	ContainerStopped  = "stopped"
	ContainerFailed   = "failed"
)

// States of one service version inside a container.
const (
	ServiceServing  = "serving"
	ServiceDraining = "draining"
	ServiceDrained  = "drained"
)

// Token roles, from the most to the least powerful.
const (
	RoleManagement = "management"
	RoleOperator   = "operator"
	RoleAgent      = "agent"
	RoleRead       = "read"
)

// Headers of the registry API and of the gateway.
const (
	HeaderIndex       = "X-Coexist-Index"
	HeaderKnownLeader = "X-Coexist-Known-Leader"
	HeaderLastContact = "X-Coexist-Last-Contact"

	HeaderClient        = "Coexist-Client"
	HeaderClientVersion = "Coexist-Client-Version"
	// HeaderClientRequire carries the caller's own constraint on the
	// version of the service it calls (e.g. "~> 1.2"), so that the
	// gateway's re-check applies the same rule as the caller's choice.
	HeaderClientRequire = "Coexist-Client-Require"
	HeaderContainer     = "Coexist-Container"
	HeaderHops          = "Coexist-Hops"
	HeaderServedBy      = "Coexist-Served-By"
	HeaderRetry         = "Coexist-Retry"

	// Census headers (docs/design.md §5): who a watch request comes from.
	// HeaderInstance is a random id per process; HeaderCalls the services
	// an SDK client has routed to, comma-separated; HeaderClientRequires
	// its own requirements, URL-encoded as service=range pairs.
	HeaderInstance       = "Coexist-Instance"
	HeaderCalls          = "Coexist-Calls"
	HeaderClientRequires = "Coexist-Client-Requires"
)

// Node is a host running `coexist agent`. Agents register their own node.
type Node struct {
	ID          string            `json:"id"`
	Address     string            `json:"address"`
	Gateway     string            `json:"gateway"`
	Labels      map[string]string `json:"labels,omitempty"`
	Status      string            `json:"status"`
	CreateIndex uint64            `json:"create_index"`
	ModifyIndex uint64            `json:"modify_index"`
}

// Service is a service name with every version declared for it, lowest first.
type Service struct {
	Name     string           `json:"name"`
	Versions []ServiceVersion `json:"versions"`
	// Served is set by GET /v1/services/{service} when the leader answers:
	// for each version that is not retired, the live SDK cohorts that call
	// the service and are routed to it (docs/design.md §5), empty for a
	// version no live client uses.
	Served map[string][]Cohort `json:"served,omitempty"`
}

// ServiceVersion is one declared version of a service and the range of client
// versions it serves.
type ServiceVersion struct {
	Service     string `json:"service"`
	Version     string `json:"version"`
	Clients     string `json:"clients"`
	Description string `json:"description,omitempty"`
	State       string `json:"state"`
	// DrainStartedAt is set while the version is draining.
	DrainStartedAt *time.Time `json:"drain_started_at,omitempty"`
	// RetiredAt is set once the version is retired.
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	CreateIndex uint64     `json:"create_index"`
	ModifyIndex uint64     `json:"modify_index"`
}

// VersionRequest is the body of PUT /v1/services/{service}/versions/{version}.
type VersionRequest struct {
	Clients     string `json:"clients"`
	Description string `json:"description,omitempty"`
}

// ServiceRef names one service version held by a container.
type ServiceRef struct {
	Service string `json:"service"`
	Version string `json:"version"`
}

func (r ServiceRef) String() string { return r.Service + "@" + r.Version }

// DriverConfig is what the driver runs. The exec driver runs Command; the oci
// driver runs Image (its entrypoint, or Command when set), see docs/design.md §6.
type DriverConfig struct {
	Command string            `json:"command,omitempty"`
	Image   string            `json:"image,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
}

// HealthCheck says how an agent decides a container is healthy: an HTTP GET of
// HTTP that answers 2xx, or, when HTTP is empty, a TCP connect to its port.
type HealthCheck struct {
	HTTP     string   `json:"http,omitempty"`
	TCP      bool     `json:"tcp,omitempty"`
	Interval Duration `json:"interval,omitempty"`
	Timeout  Duration `json:"timeout,omitempty"`
}

// RestartPolicy bounds how a container that exits is restarted, as Nomad's
// restart block does in its "fail" mode: at most Attempts restarts within
// any Interval, the first after Delay, each further one after twice the
// delay before, at most MaxDelay; one more exit within Interval and the
// container is failed for good. Zero fields take the agent's defaults (5
// attempts, 30m, 1s, 30s).
type RestartPolicy struct {
	Attempts int      `json:"attempts,omitempty"`
	Interval Duration `json:"interval,omitempty"`
	Delay    Duration `json:"delay,omitempty"`
	MaxDelay Duration `json:"max_delay,omitempty"`
}

// ContainerRequest is the body of PUT /v1/containers/{id}: the desired state
// an operator declares.
type ContainerRequest struct {
	// Name is the declarer's own name for the container (a Terraform
	// provider sends the name the id was made from); optional, a name.
	Name         string         `json:"name,omitempty"`
	Node         string         `json:"node"`
	Services     []ServiceRef   `json:"services"`
	Driver       string         `json:"driver,omitempty"`
	Config       DriverConfig   `json:"config"`
	Health       *HealthCheck   `json:"health,omitempty"`
	Restart      *RestartPolicy `json:"restart,omitempty"`
	DrainTimeout Duration       `json:"drain_timeout,omitempty"`
	Resources    *Resources     `json:"resources,omitempty"`
}

// Container is one supervised unit on one node with its desired and observed
// state.
type Container struct {
	ID string `json:"id"`
	// Name is the name it was declared with; empty when none was given.
	Name         string         `json:"name,omitempty"`
	Node         string         `json:"node"`
	Services     []ServiceRef   `json:"services"`
	Driver       string         `json:"driver"`
	Config       DriverConfig   `json:"config"`
	Health       *HealthCheck   `json:"health,omitempty"`
	Restart      *RestartPolicy `json:"restart,omitempty"`
	DrainTimeout Duration       `json:"drain_timeout"`
	Resources    *Resources     `json:"resources,omitempty"`
	// Desired is DesiredPresent or DesiredDeleted.
	Desired string `json:"desired"`
	// Status is what the container's agent last reported; nil until then.
	Status      *ContainerStatus `json:"status,omitempty"`
	CreateIndex uint64           `json:"create_index"`
	ModifyIndex uint64           `json:"modify_index"`
}

// ContainerStatus is the body of PUT /v1/containers/{id}/status: the observed
// state an agent reports.
type ContainerStatus struct {
	State     string          `json:"state"`
	Endpoint  string          `json:"endpoint,omitempty"`
	PID       int             `json:"pid,omitempty"`
	StartedAt *time.Time      `json:"started_at,omitempty"`
	Services  []ServiceStatus `json:"services,omitempty"`
	Restarts  int             `json:"restarts,omitempty"`
	Message   string          `json:"message,omitempty"`
	// UpdatedAt is set by the registry when it records the report.
	UpdatedAt *time.Time `json:"updated_at,omitempty"`
}

// ServiceStatus is the state of one service version inside a container.
type ServiceStatus struct {
	Service  string `json:"service"`
	Version  string `json:"version"`
	State    string `json:"state"`
	Inflight int    `json:"inflight"`
	// CallsPerMinute is the calls the node's gateway passed to this
	// version in this container in the last minute, for display: reported
	// periodically when it changed markedly, like Inflight.
	CallsPerMinute int `json:"calls_per_minute"`
}

// NodeRequest is the body of PUT /v1/nodes/{id}, sent by the node's agent.
type NodeRequest struct {
	Address string            `json:"address"`
	Gateway string            `json:"gateway"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// Route is what routing.Select answers: one service version and the
// containers that hold it, best first.
type Route struct {
	Service    string           `json:"service"`
	Version    string           `json:"version"`
	State      string           `json:"state"`
	Clients    string           `json:"clients"`
	Containers []RouteContainer `json:"containers"`
	Reason     string           `json:"reason,omitempty"`
}

// RouteContainer is one container able to serve a route and where to reach it.
type RouteContainer struct {
	ID       string `json:"id"`
	Node     string `json:"node"`
	Gateway  string `json:"gateway"`
	Endpoint string `json:"endpoint"`
	Inflight int    `json:"inflight"`
}

// Token is an ACL token. SecretID is shown only once, in the answer to its
// creation; the registry keeps only a hash of it.
type Token struct {
	AccessorID  string `json:"accessor_id"`
	SecretID    string `json:"secret_id,omitempty"`
	Role        string `json:"role"`
	Node        string `json:"node,omitempty"`
	Description string `json:"description,omitempty"`
	CreateIndex uint64 `json:"create_index"`
	ModifyIndex uint64 `json:"modify_index"`
}

// TokenRequest is the body of POST /v1/acl/tokens. Node is required for, and
// only allowed with, the agent role.
type TokenRequest struct {
	Role        string `json:"role"`
	Node        string `json:"node,omitempty"`
	Description string `json:"description,omitempty"`
}

// JoinRequest is the body of POST /v1/cluster/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
}

// Peer is one registry server in the Raft configuration.
type Peer struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
	Suffrage string `json:"suffrage"`
	Leader   bool   `json:"leader"`
}

// Leader is the answer to GET /v1/status/leader.
type Leader struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr,omitempty"`
}

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	Error string `json:"error"`
}

// Duration is a time.Duration written in JSON as a Go duration string ("30s").
// It reads either a string or a number of nanoseconds.
type Duration time.Duration

// Std returns d as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("invalid duration %q", s)
		}
		*d = Duration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s", b)
	}
	*d = Duration(n)
	return nil
}
