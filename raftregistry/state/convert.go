package state

import (
	"time"

	"github.com/coexist-dev/coexist/api"
)

// enum pairs each persisted value of a field (values.go) with its wire form
// (api). A value that neither side knows passes as it is: validation
// refuses it on the way in.
type enum [][2]string

func (e enum) toAPI(v string) string {
	for _, p := range e {
		if p[0] == v {
			return p[1]
		}
	}
	return v
}

func (e enum) fromAPI(v string) string {
	for _, p := range e {
		if p[1] == v {
			return p[0]
		}
	}
	return v
}

var (
	nodeStatuses  = enum{{NodeReady, api.NodeReady}, {NodeDown, api.NodeDown}}
	versionStates = enum{{VersionActive, api.VersionActive}, {VersionDraining, api.VersionDraining},
		{VersionRetired, api.VersionRetired}}
	desiredStates   = enum{{DesiredPresent, api.DesiredPresent}, {DesiredDeleted, api.DesiredDeleted}}
	containerStates = enum{{ContainerStarting, api.ContainerStarting}, {ContainerRunning, api.ContainerRunning},
		{ContainerDraining, api.ContainerDraining}, {ContainerStopped, api.ContainerStopped}, {ContainerFailed, api.ContainerFailed}}
	serviceStates = enum{{ServiceServing, api.ServiceServing}, {ServiceDraining, api.ServiceDraining},
		{ServiceDrained, api.ServiceDrained}}
	roles = enum{{RoleManagement, api.RoleManagement}, {RoleOperator, api.RoleOperator}, {RoleAgent, api.RoleAgent},
		{RoleRead, api.RoleRead}}
)

// RoleFromAPI is the persisted form of a token role named on the wire.
func RoleFromAPI(role string) string { return roles.fromAPI(role) }

// RoleAPI is the wire form of a persisted token role.
func RoleAPI(role string) string { return roles.toAPI(role) }

// API returns the wire form of a node.
func (n *Node) API() api.Node {
	return api.Node{ID: n.ID, Address: n.Address, Gateway: n.Gateway, Labels: n.Labels,
		Status: nodeStatuses.toAPI(n.Status), CreateIndex: n.CreateIndex, ModifyIndex: n.ModifyIndex}
}

// API returns the wire form of a service version.
func (v *ServiceVersion) API() api.ServiceVersion {
	return api.ServiceVersion{Service: v.Service, Version: v.Version, Clients: v.Clients,
		Description: v.Description, State: versionStates.toAPI(v.State), DrainStartedAt: v.DrainStartedAt,
		RetiredAt: v.RetiredAt, CreateIndex: v.CreateIndex, ModifyIndex: v.ModifyIndex}
}

// ServicesAPI groups versions (sorted by service) into services.
func ServicesAPI(vs []*ServiceVersion) []api.Service {
	out := []api.Service{}
	for _, v := range vs {
		if len(out) == 0 || out[len(out)-1].Name != v.Service {
			out = append(out, api.Service{Name: v.Service})
		}
		last := &out[len(out)-1]
		last.Versions = append(last.Versions, v.API())
	}
	return out
}

// Redacted stands in for what the caller may not see: an env value, a
// container's output.
const Redacted = "<redacted>"

// API returns the wire form of a container. Env values are replaced with
// "<redacted>" unless showEnv.
func (c *Container) API(showEnv bool) api.Container {
	s := &c.Spec
	out := api.Container{
		ID: c.ID, Name: s.Name, Node: s.Node, Driver: s.Driver,
		Config:       api.DriverConfig{Command: s.Command, Image: s.Image, Args: s.Args},
		DrainTimeout: api.Duration(s.DrainTimeout),
		Desired:      desiredStates.toAPI(c.Desired), CreateIndex: c.CreateIndex, ModifyIndex: c.ModifyIndex,
	}
	for _, k := range s.Services {
		out.Services = append(out.Services, api.ServiceRef{Service: k.Service, Version: k.Version})
	}
	if len(s.Env) > 0 {
		out.Config.Env = make(map[string]string, len(s.Env))
		for k, v := range s.Env {
			if !showEnv {
				v = Redacted
			}
			out.Config.Env[k] = v
		}
	}
	if s.Resources != nil {
		out.Resources = &api.Resources{Memory: s.Resources.Memory, CPU: s.Resources.CPU}
	}
	if s.Health != nil {
		out.Health = &api.HealthCheck{HTTP: s.Health.HTTP, TCP: s.Health.TCP,
			Interval: api.Duration(s.Health.Interval), Timeout: api.Duration(s.Health.Timeout)}
	}
	if s.Restart != nil {
		out.Restart = &api.RestartPolicy{Attempts: s.Restart.Attempts, Interval: api.Duration(s.Restart.Interval),
			Delay: api.Duration(s.Restart.Delay), MaxDelay: api.Duration(s.Restart.MaxDelay)}
	}
	if st := c.Status; st != nil {
		updated := st.UpdatedAt
		as := &api.ContainerStatus{State: containerStates.toAPI(st.State), Endpoint: st.Endpoint, PID: st.PID,
			StartedAt: st.StartedAt, Restarts: st.Restarts, Message: st.Message}
		if !updated.IsZero() {
			as.UpdatedAt = &updated
		}
		for _, ss := range st.Services {
			as.Services = append(as.Services, api.ServiceStatus{Service: ss.Service, Version: ss.Version,
				State: serviceStates.toAPI(ss.State), Inflight: ss.Inflight, CallsPerMinute: ss.CallsPerMinute})
		}
		out.Status = as
	}
	return out
}

// StatusFromAPI turns an agent's report into its persisted form, stamped at
// now.
func StatusFromAPI(r *api.ContainerStatus, now time.Time) ContainerStatus {
	st := ContainerStatus{State: containerStates.fromAPI(r.State), Endpoint: r.Endpoint, PID: r.PID, StartedAt: r.StartedAt,
		Restarts: r.Restarts, Message: r.Message, UpdatedAt: now}
	for _, ss := range r.Services {
		st.Services = append(st.Services, ServiceStatus{Service: ss.Service, Version: ss.Version,
			State: serviceStates.fromAPI(ss.State), Inflight: ss.Inflight, CallsPerMinute: ss.CallsPerMinute})
	}
	return st
}

// API returns the wire form of a token, without its secret.
func (t *Token) API() api.Token {
	return api.Token{AccessorID: t.AccessorID, Role: roles.toAPI(t.Role), Node: t.Node,
		Description: t.Description, CreateIndex: t.CreateIndex, ModifyIndex: t.ModifyIndex}
}
