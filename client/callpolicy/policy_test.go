package callpolicy

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

func TestClassify(t *testing.T) {
	safe := http.Header{api.HeaderRetry: {api.RetrySafe}}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	cases := []struct {
		name   string
		status int
		header http.Header
		err    error
		want   Outcome
	}{
		{"200", 200, nil, nil, Answered},
		{"503 safe", 503, safe, nil, RefusedSafe},
		{"503 without the header", 503, nil, nil, Answered},
		{"503 with another value", 503, http.Header{api.HeaderRetry: {"yes"}}, nil, Answered},
		{"500 with the header", 500, safe, nil, Answered},
		{"502", 502, nil, nil, Answered},
		{"404 no route", 404, nil, nil, Answered},
		{"dial refused", 0, nil, dial, NeverConnected},
		{"dial refused, wrapped", 0, nil, fmt.Errorf("round trip: %w", dial), NeverConnected},
		{"dial timeout", 0, nil, &net.OpError{Op: "dial", Err: context.DeadlineExceeded}, NeverConnected},
		// A refused errno outside a dial is not a connection never made.
		{"read: connection refused", 0, nil, &net.OpError{Op: "read", Err: syscall.ECONNREFUSED}, Broken},
		{"read: reset", 0, nil, &net.OpError{Op: "read", Err: syscall.ECONNRESET}, Broken},
		{"write: broken pipe", 0, nil, &net.OpError{Op: "write", Err: syscall.EPIPE}, Broken},
		{"EOF", 0, nil, io.ErrUnexpectedEOF, Broken},
		{"deadline", 0, nil, context.DeadlineExceeded, Broken},
		{"bare ECONNREFUSED", 0, nil, syscall.ECONNREFUSED, Broken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			if tc.err == nil {
				resp = &http.Response{StatusCode: tc.status, Header: tc.header}
				if resp.Header == nil {
					resp.Header = http.Header{}
				}
			}
			got := Classify(resp, tc.err)
			if got != tc.want {
				t.Errorf("Classify = %s, want %s", got, tc.want)
			}
			if Retryable(got) != (tc.want == NeverConnected || tc.want == RefusedSafe) {
				t.Errorf("Retryable(%s) = %v", got, Retryable(got))
			}
		})
	}
}

func TestRetryable(t *testing.T) {
	for o, want := range map[Outcome]bool{Answered: false, NeverConnected: true, RefusedSafe: true, Broken: false, Outcome(9): false} {
		if got := Retryable(o); got != want {
			t.Errorf("Retryable(%s) = %v, want %v", o, got, want)
		}
	}
}

// maxRand draws the largest value, minRand the smallest.
type maxRand struct{}

func (maxRand) IntN(n int) int { return n - 1 }

type minRand struct{}

func (minRand) IntN(int) int { return 0 }

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name string
		r    routing.Rand
		want []time.Duration
	}{
		{"lowest draws", minRand{}, []time.Duration{2500 * time.Microsecond, 5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 125 * ms, 125 * ms}},
		{"highest draws", maxRand{}, []time.Duration{5 * ms, 10 * ms, 20 * ms, 40 * ms, 80 * ms, 160 * ms, 250 * ms, 250 * ms}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b Backoff
			for i, want := range tc.want {
				if got := b.Next(tc.r); got != want {
					t.Errorf("pause %d = %v, want %v", i, got, want)
				}
			}
		})
	}
	// The same seed gives the same pauses.
	draw := func() []time.Duration {
		r := rand.New(rand.NewPCG(7, 7))
		var b Backoff
		var out []time.Duration
		for range 10 {
			out = append(out, b.Next(r))
		}
		return out
	}
	a, b := draw(), draw()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seeded pauses differ: %v and %v", a, b)
		}
		if a[i] < MinBackoff/2 || a[i] > MaxBackoff {
			t.Errorf("pause %v out of [%v, %v]", a[i], MinBackoff/2, MaxBackoff)
		}
	}
}

func TestRetry(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name       string
		o          Outcome
		replayable bool
		deadline   time.Duration
		want       bool
	}{
		{"never connected", NeverConnected, true, time.Second, true},
		{"refused safe", RefusedSafe, true, time.Second, true},
		{"answered", Answered, true, time.Second, false},
		{"broken after it may have reached a service", Broken, true, time.Second, false},
		{"a body that cannot be sent again", RefusedSafe, false, time.Second, false},
		{"the pause would end after the deadline", NeverConnected, true, 5 * time.Millisecond, false},
		{"the deadline passed", NeverConnected, true, -time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c Call
			c.last = "a"
			pause, got := c.Retry(tc.o, tc.replayable, now, now.Add(tc.deadline), maxRand{})
			if got != tc.want {
				t.Fatalf("Retry = %v, %v; want %v", pause, got, tc.want)
			}
			if c.avoid.Has("a") != got {
				t.Errorf("a avoided = %v after Retry = %v", c.avoid.Has("a"), got)
			}
		})
	}
}

// route builds a route of greeter 1.0.0 on the given containers, each on
// its own node, in the order Select prefers them (the primary first).
func route(t *testing.T, ids ...string) routing.Route {
	t.Helper()
	svc := []api.Service{{Name: "greeter", Versions: []api.ServiceVersion{{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0.0", State: api.VersionActive}}}}
	var ctrs []api.Container
	var nodes []api.Node
	for _, id := range ids {
		n := "n-" + id
		ctrs = append(ctrs, api.Container{ID: id, Node: n, Desired: api.DesiredPresent,
			Services: []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}},
			Status: &api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:1",
				Services: []api.ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing}}}})
		nodes = append(nodes, api.Node{ID: n, Gateway: "127.0.0.1:2", Status: api.NodeReady})
	}
	c, err := routing.ParseClient("web", "1.0.0", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	r, err := routing.Select(routing.NewTable(svc, ctrs, nodes), c, "greeter", minRand{})
	if err != nil || r.Len() != len(ids) {
		t.Fatalf("Select: %v, %d targets", err, r.Len())
	}
	return r
}

func TestPick(t *testing.T) {
	r := route(t, "a", "b", "c")
	order := []string{r.At(0).ID, r.At(1).ID, r.At(2).ID}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var c Call
	// Each refusal moves the call to the next container not yet refused;
	// once every one refused, to the one that refused longest ago.
	want := []string{order[0], order[1], order[2], order[0], order[1], order[2]}
	for i, w := range want {
		if got := c.Pick(&r).ID; got != w {
			t.Fatalf("attempt %d picked %s, want %s (order %v)", i, got, w, order)
		}
		if _, ok := c.Retry(RefusedSafe, true, now, now.Add(time.Hour), minRand{}); !ok {
			t.Fatalf("attempt %d: no retry", i)
		}
	}
}

func TestAvoidForgetsTheOldest(t *testing.T) {
	var s Avoid
	for _, id := range []string{"a", "b", "c", "d", "b", "e"} {
		s.Add(id)
	}
	// Full at four: e replaced a, the oldest; b was refreshed, not added.
	for id, want := range map[string]bool{"a": false, "b": true, "c": true, "d": true, "e": true} {
		if s.Has(id) != want {
			t.Errorf("Has(%s) = %v, want %v", id, s.Has(id), want)
		}
	}
	if s.Len() != 4 {
		t.Errorf("Len = %d, want 4", s.Len())
	}
	s.Add("f") // forgets c, now the oldest
	if s.Has("c") || !s.Has("b") {
		t.Errorf("after f: c %v, b %v; want c forgotten, b kept", s.Has("c"), s.Has("b"))
	}
}

func TestCallAllocatesNothing(t *testing.T) {
	r := route(t, "a", "b")
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	n := testing.AllocsPerRun(100, func() {
		var c Call
		c.Pick(&r)
		c.Retry(NeverConnected, true, now, now.Add(time.Second), minRand{})
		c.Pick(&r)
	})
	if n != 0 {
		t.Errorf("a call's policy allocates %v times", n)
	}
}
