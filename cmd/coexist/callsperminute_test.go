package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// callsPerMinute is what c's status reports for greeter@ver.
func callsPerMinute(c *api.Container, ver string) int {
	if c.Status == nil {
		return 0
	}
	for _, ss := range c.Status.Services {
		if ss.Service == "greeter" && ss.Version == ver {
			return ss.CallsPerMinute
		}
	}
	return 0
}

// TestCallsPerMinuteReported runs a real server and agent with greeter
// 1.0.0 and 2.0.0: while both are idle for longer than the agent's in-flight
// report interval, nothing is written (the containers table's Raft index
// stays flat); under load on 1.0.0 its container reports a non-zero
// calls_per_minute, while the idle 2.0.0 container writes nothing more (its
// status, modify index and updated_at, unchanged) and reports 0; `coexist
// services show` sums them per version.
func TestCallsPerMinuteReported(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	a := f.startAgent("n1")
	ranges := map[string]string{"1.0.0": ">= 1.0, < 2.0", "2.0.0": ">= 2.0, < 3.0"}
	f.declare("greeter", "1.0.0", ranges["1.0.0"])
	f.declare("greeter", "2.0.0", ranges["2.0.0"])
	f.greeter("g1", "n1", "1.0.0", nil)
	f.greeter("g2", "n1", "2.0.0", nil)
	f.waitState("g1", api.ContainerRunning)
	f.waitState("g2", api.ContainerRunning)
	ctx := context.Background()

	// Idle: longer than the in-flight report interval (10 s), no write.
	time.Sleep(2 * time.Second)
	_, idle, err := f.api.Containers().List(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(12 * time.Second)
	_, still, err := f.api.Containers().List(ctx, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if still.LastIndex != idle.LastIndex {
		t.Fatalf("idle containers wrote: the containers index went %d → %d", idle.LastIndex, still.LastIndex)
	}

	g2 := f.container("g2")
	var mu sync.Mutex
	v1 := newCaller(a.gateway, "web", "1.3.0", ranges, &mu)
	stop := make(chan struct{})
	wg := v1.load(stop, 50, 2, 5*time.Second)
	defer func() { close(stop); wg.Wait() }()
	var g1 *api.Container
	waitFor(t, 30*time.Second, "g1 to report calls per minute", func() bool {
		c, _, err := f.api.Containers().Info(ctx, "g1", nil)
		if err != nil {
			return false
		}
		g1 = c
		return callsPerMinute(c, "1.0.0") > 0
	})
	if n := callsPerMinute(g1, "1.0.0"); n > int(v1.ok.Load()+v1.failed.Load()) {
		t.Errorf("g1 reports %d calls per minute; only %d were made", n, v1.ok.Load()+v1.failed.Load())
	}
	// `coexist services show` sums them per version.
	d, err := serviceView(ctx, f.api, "greeter")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range d.Versions {
		if want := map[string]bool{"1.0.0": true}[v.Version]; (v.CallsPerMinute > 0) != want {
			t.Errorf("services show: greeter %s at %d calls per minute", v.Version, v.CallsPerMinute)
		}
	}
	time.Sleep(11 * time.Second) // another report interval under load
	after := f.container("g2")
	if after.ModifyIndex != g2.ModifyIndex || !after.Status.UpdatedAt.Equal(*g2.Status.UpdatedAt) || callsPerMinute(after, "2.0.0") != 0 {
		t.Fatalf("the idle g2 wrote under load on g1: modify index %d → %d, updated %v → %v, calls per minute %d",
			g2.ModifyIndex, after.ModifyIndex, g2.Status.UpdatedAt, after.Status.UpdatedAt, callsPerMinute(after, "2.0.0"))
	}
	v1.assertNoFailures(t)
}
