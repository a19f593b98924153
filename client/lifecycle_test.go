package client

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestInPlaceChangeOfWhatRunsIsRefused: under ~100 calls/s through the SDK,
// a ?cas write that would change what a container runs is refused with 409
// and the container keeps serving; a change of its drain timeout is written
// in place without a restart; no call fails.
func TestInPlaceChangeOfWhatRunsIsRefused(t *testing.T) {
	c := startDev(t)
	c.declare("1.0.0", ">= 1.0, < 2.0")
	c.container("g1", "1.0.0")
	c.waitRunning("g1")
	before := c.info("g1")

	cr := newCaller(c.newClient("1.3.0", nil, nil), "1.3.0", "")
	stop := make(chan struct{})
	wg := cr.run(stop, 4, 30*time.Millisecond)
	c.waitFor(5*time.Second, "calls to flow", func() bool { return len(cr.all()) > 50 })

	req := api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}},
		Config: api.DriverConfig{Command: greeterBin, Args: []string{"--version", "1.0.0"},
			Env: map[string]string{"GREETER_NOTE": "two"}},
		Health:       &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(500 * time.Millisecond)},
		DrainTimeout: api.Duration(10 * time.Second)}
	_, _, err := c.api.Containers().Declare(context.Background(), "g1", req, &api.WriteOptions{CAS: api.CAS(before.ModifyIndex)})
	if !api.IsConflict(err) || !strings.Contains(err.Error(), `container "g1": config.env differs`) ||
		!strings.Contains(err.Error(), "declare a new container") {
		t.Errorf("in-place change of what runs: %v; want 409 saying to declare a new container", err)
	}

	req.Config.Env = nil
	req.DrainTimeout = api.Duration(20 * time.Second)
	if _, _, err := c.api.Containers().Declare(context.Background(), "g1", req, &api.WriteOptions{CAS: api.CAS(before.ModifyIndex)}); err != nil {
		t.Errorf("in-place change of drain_timeout: %v", err)
	}
	time.Sleep(time.Second) // keep the load on after the writes
	close(stop)
	wg.Wait()

	after := c.info("g1")
	if after.DrainTimeout.Std() != 20*time.Second {
		t.Errorf("drain_timeout = %s, want 20s", after.DrainTimeout)
	}
	if after.Status.PID != before.Status.PID || !after.Status.StartedAt.Equal(*before.Status.StartedAt) || after.Status.State != api.ContainerRunning {
		t.Errorf("g1 was restarted or stopped: %+v -> %+v", before.Status, after.Status)
	}
	served := cr.verify(t, c, nil)
	if served["1.0.0"] == 0 {
		t.Errorf("no call served: %v", served)
	}
}
