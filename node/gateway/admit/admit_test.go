package admit

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

// table: greeter 1.0.0 (clients 1.x) on g1 at n1, 2.0.0 (clients 2.x) on g2
// at n2; pay 1.0.0 draining (clients 1.x-2.x) on p1, 2.0.0 active (clients
// 2.x) on p2, both at n1.
func table(t *testing.T) *routing.Table {
	t.Helper()
	sv := func(s, v, clients, state string) api.ServiceVersion {
		return api.ServiceVersion{Service: s, Version: v, Clients: clients, State: state}
	}
	ctr := func(id, node, ref string) api.Container {
		s, v, _ := strings.Cut(ref, "@")
		return api.Container{ID: id, Node: node, Desired: api.DesiredPresent,
			Services: []api.ServiceRef{{Service: s, Version: v}},
			Status: &api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:1",
				Services: []api.ServiceStatus{{Service: s, Version: v, State: api.ServiceServing}}}}
	}
	return routing.NewTable(
		[]api.Service{
			{Name: "greeter", Versions: []api.ServiceVersion{
				sv("greeter", "1.0.0", ">= 1.0, < 2.0", api.VersionActive),
				sv("greeter", "2.0.0", ">= 2.0, < 3.0", api.VersionActive)}},
			{Name: "pay", Versions: []api.ServiceVersion{
				sv("pay", "1.0.0", ">= 1.0, < 3.0", api.VersionDraining),
				sv("pay", "2.0.0", ">= 2.0, < 3.0", api.VersionActive)}},
		},
		[]api.Container{ctr("g1", "n1", "greeter@1.0.0"), ctr("g2", "n2", "greeter@2.0.0"),
			ctr("p1", "n1", "pay@1.0.0"), ctr("p2", "n1", "pay@2.0.0")},
		[]api.Node{{ID: "n1", Gateway: "127.0.0.1:2", Status: api.NodeReady},
			{ID: "n2", Gateway: "127.0.0.1:3", Status: api.NodeReady}},
	)
}

type firstRand struct{}

func (firstRand) IntN(int) int { return 0 }

// TestDecide: the gateway's decision on a call, each way it goes.
func TestDecide(t *testing.T) {
	tab := table(t)
	client := func(v string) routing.Client {
		c, err := routing.ParseClient("web", v, nil, "n1")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	type want struct {
		decision routing.Decision
		primary  string // admitted: the route's primary
		remote   bool
		code     int // refused: the status
		reason   string
		label    string
		retry    bool
		stale    bool // the error wraps routing.ErrStaleContainer
	}
	cases := []struct {
		name string
		call Call
		want want
	}{
		{"a local container named", Call{Client: client("1.2.0"), Service: "greeter", Container: "g1"},
			want{decision: routing.DecisionForward, primary: "g1"}},
		{"no container named: chosen, local", Call{Client: client("1.2.0"), Service: "greeter"},
			want{decision: routing.DecisionForward, primary: "g1"}},
		{"a container on another node, first hop", Call{Client: client("2.0.0"), Service: "greeter", Container: "g2"},
			want{decision: routing.DecisionForward, primary: "g2", remote: true}},
		{"Coexist-Hops: 0 is a first hop", Call{Client: client("2.0.0"), Service: "greeter", Container: "g2", Hops: "0"},
			want{decision: routing.DecisionForward, primary: "g2", remote: true}},
		{"a container on another node, second hop: the hop limit", Call{Client: client("2.0.0"), Service: "greeter", Container: "g2", Hops: "1"},
			want{decision: routing.DecisionForward, code: http.StatusServiceUnavailable, reason: ReasonHopLimit, label: "greeter", retry: true}},
		{"a local container, second hop", Call{Client: client("1.0.0"), Service: "greeter", Container: "g1", Hops: "1"},
			want{decision: routing.DecisionForward, primary: "g1"}},
		{"an unknown service", Call{Client: client("1.0.0"), Service: "nosuch"},
			want{decision: routing.DecisionUnknownService, code: http.StatusNotFound, reason: ReasonUnknownService}},
		{"no version serves the caller, no container named", Call{Client: client("9.0.0"), Service: "greeter"},
			want{decision: routing.DecisionNoCompatible, code: http.StatusNotFound, reason: ReasonNoCompatible, label: "greeter"}},
		{"no version serves the caller, a container named", Call{Client: client("9.0.0"), Service: "greeter", Container: "g1"},
			want{decision: routing.DecisionNoCompatible, code: http.StatusServiceUnavailable, reason: ReasonRetry, label: "greeter", retry: true, stale: true}},
		{"a draining container named by a caller with an active candidate", Call{Client: client("2.0.0"), Service: "pay", Container: "p1"},
			want{decision: routing.DecisionRefuseRetry, code: http.StatusServiceUnavailable, reason: ReasonRetry, label: "pay", retry: true, stale: true}},
		{"a container that does not admit the caller", Call{Client: client("1.0.0"), Service: "greeter", Container: "g2"},
			want{decision: routing.DecisionRefuseRetry, code: http.StatusServiceUnavailable, reason: ReasonRetry, label: "greeter", retry: true, stale: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.call.Node = "n1"
			v := Decide(tab, tc.call, firstRand{})
			if v.Decision != tc.want.decision {
				t.Errorf("decision %v, want %v", v.Decision, tc.want.decision)
			}
			if tc.want.code == 0 {
				if v.Refusal != nil {
					t.Fatalf("refused: %d %s: %v", v.Refusal.Code, v.Refusal.Reason, v.Refusal.Err)
				}
				if got := v.Route.Primary().ID; got != tc.want.primary || v.Remote != tc.want.remote {
					t.Errorf("primary %s remote %v, want %s %v", got, v.Remote, tc.want.primary, tc.want.remote)
				}
				return
			}
			r := v.Refusal
			if r == nil {
				t.Fatalf("admitted to %s (remote %v), want %d %s", v.Route.Primary().ID, v.Remote, tc.want.code, tc.want.reason)
			}
			if r.Code != tc.want.code || r.Reason != tc.want.reason || r.Service != tc.want.label || r.Retry != tc.want.retry {
				t.Errorf("refusal %d %q label %q retry %v, want %d %q label %q retry %v",
					r.Code, r.Reason, r.Service, r.Retry, tc.want.code, tc.want.reason, tc.want.label, tc.want.retry)
			}
			if r.Err == nil || errors.Is(r.Err, routing.ErrStaleContainer) != tc.want.stale {
				t.Errorf("error %v: wraps ErrStaleContainer %v, want %v", r.Err, errors.Is(r.Err, routing.ErrStaleContainer), tc.want.stale)
			}
		})
	}
}

// TestHopLimitNamesTheHop: the refusal of a second hop says where the
// container is and which header stopped it.
func TestHopLimitNamesTheHop(t *testing.T) {
	c, err := routing.ParseClient("web", "2.0.0", nil, "n1")
	if err != nil {
		t.Fatal(err)
	}
	v := Decide(table(t), Call{Client: c, Service: "greeter", Container: "g2", Hops: "1", Node: "n1"}, nil)
	if v.Refusal == nil {
		t.Fatal("a second hop was admitted")
	}
	for _, want := range []string{api.HeaderHops + ": 1", `"g2"`, "greeter@2.0.0", `"n2"`, `"n1"`} {
		if !strings.Contains(v.Refusal.Err.Error(), want) {
			t.Errorf("error %q does not say %q", v.Refusal.Err, want)
		}
	}
}

// TestJudgeForwardWithoutRoute: an admission that forwards but names no
// container is refused as safe to retry, never served by a guess.
func TestJudgeForwardWithoutRoute(t *testing.T) {
	v := Call{Service: "greeter", Node: "n1"}.Judge(routing.DecisionForward, routing.Route{}, nil)
	if v.Refusal == nil || v.Refusal.Code != http.StatusServiceUnavailable || !v.Refusal.Retry {
		t.Fatalf("verdict %+v, want a 503 safe to retry", v)
	}
}

// TestNotReady: a gateway with no table yet refuses as safe to retry.
func TestNotReady(t *testing.T) {
	r := NotReady()
	if r.Code != http.StatusServiceUnavailable || !r.Retry || r.Reason != ReasonStarting || r.Err == nil {
		t.Fatalf("NotReady = %+v", r)
	}
}

func TestForwarded(t *testing.T) {
	for hops, want := range map[string]bool{"": false, "0": false, "1": true, "2": true, "x": true} {
		if got := Forwarded(hops); got != want {
			t.Errorf("Forwarded(%q) = %v, want %v", hops, got, want)
		}
	}
}
