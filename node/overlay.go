package node

import "github.com/coexist-dev/coexist/api"

// Overlay is the status a node's gateway routes by for one of its own
// containers: the registry's view, demoted by the agent's fresher local
// view, and never promoted by it. A container becomes routable on a gateway
// only once the registry has it running (so that the clients' tables, which
// come from the registry, can choose it too); it stops being routable the
// moment the agent drains or loses it, before the registry hears of it.
//
// Promoting from local state alone made gateways prefer a version the
// clients could not see yet, during a registry leader loss, and refuse
// every call for the version they could see (found by the simulator).
func Overlay(registry *api.ContainerStatus, local api.ContainerStatus) *api.ContainerStatus {
	if registry == nil || registry.State != api.ContainerRunning {
		return registry
	}
	out := local
	out.Services = make([]api.ServiceStatus, len(local.Services))
	copy(out.Services, local.Services)
	for i := range out.Services {
		s := &out.Services[i]
		for _, r := range registry.Services {
			if r.Service == s.Service && r.Version == s.Version && r.State == api.ServiceDrained {
				s.State = api.ServiceDrained
			}
		}
	}
	return &out
}
