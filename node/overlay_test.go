package node

import (
	"testing"

	"github.com/coexist-dev/coexist/api"
)

func TestOverlayOnlyDemotes(t *testing.T) {
	svc := func(state string) []api.ServiceStatus {
		return []api.ServiceStatus{{Service: "greeter", Version: "1.0.0", State: state}}
	}
	running := func(s string) api.ContainerStatus {
		return api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:21000", Services: svc(s)}
	}
	cases := []struct {
		name       string
		registry   *api.ContainerStatus
		local      api.ContainerStatus
		wantState  string
		wantSvc    string
		wantNilOut bool
	}{
		{"registry has not heard of it: not routable", nil, running(api.ServiceServing), "", "", true},
		{"registry says starting, locally healthy: not yet routable",
			&api.ContainerStatus{State: api.ContainerStarting, Services: svc(api.ServiceServing)}, running(api.ServiceServing),
			api.ContainerStarting, api.ServiceServing, false},
		{"both running: routable", ptr(running(api.ServiceServing)), running(api.ServiceServing), api.ContainerRunning, api.ServiceServing, false},
		{"locally draining: demoted at once", ptr(running(api.ServiceServing)),
			api.ContainerStatus{State: api.ContainerDraining, Services: svc(api.ServiceDraining)}, api.ContainerDraining, api.ServiceDraining, false},
		{"registry says drained: stays drained", ptr(running(api.ServiceDrained)), running(api.ServiceServing),
			api.ContainerRunning, api.ServiceDrained, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Overlay(c.registry, c.local)
			if c.wantNilOut {
				if got != nil {
					t.Fatalf("got %+v, want nil", got)
				}
				return
			}
			if got.State != c.wantState || got.Services[0].State != c.wantSvc {
				t.Fatalf("got %s/%s, want %s/%s", got.State, got.Services[0].State, c.wantState, c.wantSvc)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
