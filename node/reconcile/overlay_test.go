package reconcile

import (
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestOverlayLocalCounts: the agent's own observation decides, in both
// directions, whatever the registry last heard (docs/design.md §4).
func TestOverlayLocalCounts(t *testing.T) {
	c := &api.Container{ID: "g1", Node: "n1", Services: []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}},
		Status: &api.ContainerStatus{State: api.ContainerStarting}}
	active := map[string]string{"greeter@1.0.0": api.VersionActive}
	draining := map[string]string{"greeter@1.0.0": api.VersionDraining}
	cases := []struct {
		name      string
		registry  *api.ContainerStatus
		local     *Local
		versions  map[string]string
		wantNil   bool
		wantState string
		wantSvc   string
	}{
		{name: "no local record: not usable", registry: &api.ContainerStatus{State: api.ContainerRunning}, wantNil: true},
		{name: "registry says starting, locally healthy: usable", registry: &api.ContainerStatus{State: api.ContainerStarting},
			local: &Local{Phase: PhaseRunning, Endpoint: "127.0.0.1:21000"}, versions: active,
			wantState: api.ContainerRunning, wantSvc: api.ServiceServing},
		{name: "registry says running, locally exited, waiting to restart: not usable", registry: &api.ContainerStatus{State: api.ContainerRunning},
			local: &Local{Phase: PhaseExited}, versions: active, wantState: api.ContainerStarting, wantSvc: api.ServiceServing},
		{name: "registry says running, locally failed for good: not usable", registry: &api.ContainerStatus{State: api.ContainerRunning},
			local: &Local{Phase: PhaseFailed}, versions: active, wantState: api.ContainerFailed, wantSvc: api.ServiceDrained},
		{name: "locally draining: demoted at once", registry: &api.ContainerStatus{State: api.ContainerRunning},
			local: &Local{Phase: PhaseDraining, Inflight: map[string]int{"greeter@1.0.0": 2}}, versions: active,
			wantState: api.ContainerDraining, wantSvc: api.ServiceDraining},
		{name: "registry says drained, version declared again: serving",
			registry: &api.ContainerStatus{State: api.ContainerRunning, Services: []api.ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceDrained}}},
			local:    &Local{Phase: PhaseRunning, StartedAt: time.Unix(1, 0)}, versions: active,
			wantState: api.ContainerRunning, wantSvc: api.ServiceServing},
		{name: "version draining, calls in flight: draining", registry: &api.ContainerStatus{State: api.ContainerRunning},
			local: &Local{Phase: PhaseRunning, Inflight: map[string]int{"greeter@1.0.0": 1}}, versions: draining,
			wantState: api.ContainerRunning, wantSvc: api.ServiceDraining},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c
			cc.Status = tc.registry
			got := Overlay(&cc, tc.local, tc.versions)
			if tc.wantNil {
				if got != nil {
					t.Fatalf("got %+v, want nil", got)
				}
				return
			}
			if got.State != tc.wantState || got.Services[0].State != tc.wantSvc {
				t.Fatalf("got %s/%s, want %s/%s", got.State, got.Services[0].State, tc.wantState, tc.wantSvc)
			}
		})
	}
}
