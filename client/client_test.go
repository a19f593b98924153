package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

// twoMajors is greeter 1.2.0 for 1.x clients in c1 on n1, and 2.0.0 for 2.x
// clients in c2 on n2.
func twoMajors(g1, g2 *fakeGateway) ([]api.Service, []api.Container, []api.Node) {
	return []api.Service{svc("greeter",
			sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive),
			sv("greeter", "2.0.0", ">= 2.0, < 3.0", api.VersionActive))},
		[]api.Container{running("c1", "n1", "greeter@1.2.0"), running("c2", "n2", "greeter@2.0.0")},
		[]api.Node{nodeRec("n1", g1.addr()), nodeRec("n2", g2.addr())}
}

func get(t *testing.T, c *Client, url string) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestNewValidatesConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"no name":         {Config{Version: "1.0.0"}, "Config.Name is required"},
		"no version":      {Config{Name: "web"}, "Config.Version is required"},
		"bad version":     {Config{Name: "web", Version: "one"}, `Config.Version: "one" is not a valid version`},
		"short version":   {Config{Name: "web", Version: "1.0"}, `client: Config.Version: "1.0" is not canonical; write "1.0.0"`},
		"v prefix":        {Config{Name: "web", Version: "v1.2.0"}, `client: Config.Version: "v1.2.0" is not canonical; write "1.2.0"`},
		"build metadata":  {Config{Name: "web", Version: "1.2.0+b1"}, `client: Config.Version: "1.2.0+b1" is not canonical; write "1.2.0"`},
		"bad requirement": {Config{Name: "web", Version: "1.0.0", Requires: map[string]string{"greeter": "~>"}}, "Config.Requires[greeter]"},
		"unsatisfiable requirement": {Config{Name: "web", Version: "1.0.0", Requires: map[string]string{"greeter": ">= 2.0, < 1.0"}},
			`client: Config.Requires[greeter]: ">= 2.0, < 1.0" admits no version`},
		"bad registry": {Config{Name: "web", Version: "1.0.0", Registry: "ftp://x"}, "invalid registry address"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := New(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestNewFailsClearlyWithoutRegistry(t *testing.T) {
	addr := "http://" + closedAddr(t)
	start := time.Now()
	_, err := New(context.Background(), Config{Name: "web", Version: "1.0.0", Registry: addr, Token: "x",
		InitialTimeout: 300 * time.Millisecond})
	took := time.Since(start)
	if !errors.Is(err, ErrNoTable) {
		t.Fatalf("New = %v, want ErrNoTable", err)
	}
	for _, want := range []string{addr, "300ms", "connection refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if took < 300*time.Millisecond || took > 3*time.Second {
		t.Errorf("New gave up after %s, want about 300ms", took)
	}
}

func TestNewFailsFastOnBadToken(t *testing.T) {
	f := newFakeRegistry(t)
	start := time.Now()
	_, err := New(context.Background(), Config{Name: "web", Version: "1.0.0", Registry: f.url(), Token: "wrong",
		InitialTimeout: 10 * time.Second})
	if err == nil || !api.IsUnauthorized(err) {
		t.Fatalf("New = %v, want a 403", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("New took %s to report a refused token", took)
	}
}

func TestNewHonoursContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := New(ctx, Config{Name: "web", Version: "1.0.0", Registry: "http://" + closedAddr(t), Token: "x"})
	if !errors.Is(err, ErrNoTable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("New = %v, want ErrNoTable and DeadlineExceeded", err)
	}
}

// A call goes to the gateway of the chosen container's node, by path, with
// the client's headers, and the caller's request is left as it was.
func TestCallGoesToChosenGateway(t *testing.T) {
	g1, g2 := newFakeGateway(t), newFakeGateway(t)
	g1.handle("c1", serveAs("greeter@1.2.0", "c1"))
	g2.handle("c2", serveAs("greeter@2.0.0", "c2"))
	f := newFakeRegistry(t)
	f.set(twoMajors(g1, g2))

	for _, tc := range []struct {
		version, gateway, container string
		g                           *fakeGateway
	}{
		{"1.3.0", g1.addr(), "c1", g1},
		{"2.1.0", g2.addr(), "c2", g2},
	} {
		c := newTestClient(t, f, Config{Version: tc.version, Requires: map[string]string{"greeter": ">= 1.0", "other": "~> 1.0"}})
		req, _ := http.NewRequest(http.MethodGet, "http://greeter:8080/hello/there?name=x%2Fy", nil)
		req.Header.Set("X-Mine", "kept")
		req.Header.Set(api.HeaderHops, "1") // not the caller's to set
		before, beforeHost := req.URL.String(), req.Host
		beforeHdr := req.Header.Clone()
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get(api.HeaderServedBy) == "" {
			t.Fatalf("client %s: %s, served by %q", tc.version, resp.Status, resp.Header.Get(api.HeaderServedBy))
		}
		if req.URL.String() != before || !jsonEqual(req.Header, beforeHdr) || req.Host != beforeHost {
			t.Errorf("the caller's request changed: %s %v host %q", req.URL, req.Header, req.Host)
		}
		calls := tc.g.recorded()
		if len(calls) == 0 {
			t.Fatalf("client %s: gateway %s got no call", tc.version, tc.gateway)
		}
		got := calls[len(calls)-1]
		want := map[string]string{
			api.HeaderClient:        "web",
			api.HeaderClientVersion: tc.version,
			api.HeaderContainer:     tc.container,
			HeaderClientRequire:     ">= 1.0",
			"X-Mine":                "kept",
			api.HeaderHops:          "",
		}
		for k, v := range want {
			if got.Header.Get(k) != v {
				t.Errorf("client %s: header %s = %q, want %q", tc.version, k, got.Header.Get(k), v)
			}
		}
		if got.Path != "/greeter/hello/there" || got.RawQuery != "name=x%2Fy" || got.Host != "greeter:8080" {
			t.Errorf("client %s: gateway got path %q query %q host %q", tc.version, got.Path, got.RawQuery, got.Host)
		}
	}
}

func TestNoCompatibleVersionMakesNoCall(t *testing.T) {
	g1, g2 := newFakeGateway(t), newFakeGateway(t)
	f := newFakeRegistry(t)
	f.set(twoMajors(g1, g2))
	c := newTestClient(t, f, Config{Version: "3.0.0"})
	_, err := c.HTTPClient().Get("http://greeter/hello")
	if !errors.Is(err, ErrNoCompatibleVersion) {
		t.Fatalf("call = %v, want ErrNoCompatibleVersion", err)
	}
	var nc *routing.NoCompatibleError
	if !errors.As(err, &nc) || nc.ClientVersion != "3.0.0" || len(nc.Versions) != 2 {
		t.Fatalf("error %v is not a NoCompatibleError naming the client and both versions", err)
	}
	for _, want := range []string{"web@3.0.0", `"greeter"`, `1.2.0 (active, clients ">= 1.0, < 2.0")`, `2.0.0 (active, clients ">= 2.0, < 3.0")`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, err := c.HTTPClient().Get("http://nosuch/x"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("call to an unknown service = %v, want ErrUnknownService", err)
	}
	if n := len(g1.recorded()) + len(g2.recorded()); n != 0 {
		t.Errorf("%d calls reached a gateway", n)
	}
}

// twoContainers is greeter 1.2.0 in a on n1 and b on n2.
func twoContainers(t *testing.T, f *fakeRegistry, gwA, gwB string) {
	t.Helper()
	f.set([]api.Service{svc("greeter", sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive))},
		[]api.Container{running("a", "n1", "greeter@1.2.0"), running("b", "n2", "greeter@1.2.0")},
		[]api.Node{nodeRec("n1", gwA), nodeRec("n2", gwB)})
}

func TestRetriesOnAnotherContainer(t *testing.T) {
	ga, gb := newFakeGateway(t), newFakeGateway(t)
	ga.handle("a", refuseSafe)
	gb.handle("b", serveAs("greeter@1.2.0", "b"))

	t.Run("refused as safe to retry", func(t *testing.T) {
		f := newFakeRegistry(t)
		twoContainers(t, f, ga.addr(), gb.addr())
		c := newTestClient(t, f, Config{Version: "1.0.0"})
		for range 20 {
			resp, body := get(t, c, "http://greeter/hello")
			if resp.StatusCode != 200 || body != "served by greeter@1.2.0 b" {
				t.Fatalf("%s %q", resp.Status, body)
			}
		}
		// Each refusal was retried once, on b.
		refused := float64(len(ga.recorded()))
		if refused == 0 {
			t.Fatal("a was never chosen first; the test proves nothing")
		}
		if got := value(c.metrics.retries.WithLabelValues("greeter", "1.2.0")); got != refused {
			t.Errorf("retries = %v, want %v", got, refused)
		}
		if got := value(c.metrics.failures.WithLabelValues("greeter", "1.2.0")); got != 0 {
			t.Errorf("failures = %v, want 0", got)
		}
	})

	t.Run("connection never made", func(t *testing.T) {
		f := newFakeRegistry(t)
		twoContainers(t, f, closedAddr(t), gb.addr())
		c := newTestClient(t, f, Config{Version: "1.0.0"})
		before := len(gb.recorded())
		for range 20 {
			resp, body := get(t, c, "http://greeter/hello")
			if resp.StatusCode != 200 || body != "served by greeter@1.2.0 b" {
				t.Fatalf("%s %q", resp.Status, body)
			}
		}
		if got := value(c.metrics.retries.WithLabelValues("greeter", "1.2.0")); got == 0 {
			t.Error("no retry counted: the closed gateway was never chosen")
		}
		if n := len(gb.recorded()) - before; n != 20 {
			t.Errorf("b got %d calls, want 20", n)
		}
	})
}

func TestSkipsANodeWithoutGateway(t *testing.T) {
	gb := newFakeGateway(t)
	gb.handle("b", serveAs("greeter@1.2.0", "b"))
	f := newFakeRegistry(t)
	twoContainers(t, f, "", gb.addr())
	c := newTestClient(t, f, Config{Version: "1.0.0"})
	for range 10 {
		req, _ := http.NewRequest(http.MethodPost, "http://greeter/hello", strings.NewReader("x"))
		resp, err := c.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s", resp.Status)
		}
	}
	if n := len(gb.recorded()); n != 10 {
		t.Errorf("b got %d calls, want 10", n)
	}
}

func TestDoesNotRetryWhatMayHaveReachedAService(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"502":           func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) },
		"503 no header": func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) },
		"500 with header": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set(api.HeaderRetry, "safe")
			w.WriteHeader(500)
		},
		"404 no route": func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusNotFound, api.ErrorResponse{Error: "no compatible version"})
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := newFakeGateway(t)
			g.handle("a", h)
			g.handle("b", h)
			f := newFakeRegistry(t)
			twoContainers(t, f, g.addr(), g.addr())
			c := newTestClient(t, f, Config{Version: "1.0.0"})
			resp, _ := get(t, c, "http://greeter/hello")
			if n := len(g.recorded()); n != 1 {
				t.Fatalf("%d attempts, want 1", n)
			}
			if resp.StatusCode < 400 {
				t.Fatalf("status %s", resp.Status)
			}
		})
	}
}

func TestRetryResendsTheBody(t *testing.T) {
	ga, gb := newFakeGateway(t), newFakeGateway(t)
	ga.handle("a", refuseSafe)
	ga.handle("b", refuseSafe)
	gb.handle("a", serveAs("greeter@1.2.0", "a"))
	gb.handle("b", serveAs("greeter@1.2.0", "b"))
	f := newFakeRegistry(t)
	// Both containers refuse through ga at first.
	twoContainers(t, f, ga.addr(), ga.addr())
	c := newTestClient(t, f, Config{Version: "1.0.0"})

	// Without GetBody, the refusal is the answer: the body cannot be sent
	// again.
	req, _ := http.NewRequest(http.MethodPost, "http://greeter/hello", io.NopCloser(strings.NewReader("payload")))
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get(api.HeaderRetry) != "safe" || len(ga.recorded()) != 1 {
		t.Fatalf("%s after %d attempts, want the first refusal", resp.Status, len(ga.recorded()))
	}

	// With GetBody, every attempt carries the whole body; the table moves b
	// to gb while the call retries.
	go func() {
		time.Sleep(50 * time.Millisecond)
		twoContainers(t, f, ga.addr(), gb.addr())
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, http.MethodPost, "http://greeter/hello", bytes.NewReader([]byte("payload")))
	resp, err = c.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s", resp.Status)
	}
	calls := append(ga.recorded()[1:], gb.recorded()...)
	if len(calls) < 2 {
		t.Fatalf("%d attempts, want a retry", len(calls))
	}
	for _, call := range calls {
		if call.Body != "payload" || call.Method != http.MethodPost {
			t.Errorf("attempt %s with body %q", call.Method, call.Body)
		}
	}
}

func TestRetriesStopAtTheDeadline(t *testing.T) {
	g := newFakeGateway(t)
	g.handle("a", refuseSafe)
	g.handle("b", refuseSafe)
	f := newFakeRegistry(t)
	twoContainers(t, f, g.addr(), g.addr())
	c := newTestClient(t, f, Config{Version: "1.0.0", RetryTimeout: 300 * time.Millisecond})

	t.Run("request deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://greeter/hello", nil)
		start := time.Now()
		resp, err := c.HTTPClient().Do(req)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("%s, want the last refusal", resp.Status)
		}
		if took < 250*time.Millisecond || took > 600*time.Millisecond {
			t.Errorf("gave up after %s, want just before the 500ms deadline", took)
		}
	})
	t.Run("no deadline", func(t *testing.T) {
		start := time.Now()
		resp, err := c.HTTPClient().Get("http://greeter/hello")
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 || took < 150*time.Millisecond || took > 500*time.Millisecond {
			t.Errorf("%s after %s, want the last refusal after about RetryTimeout (300ms)", resp.Status, took)
		}
	})
	t.Run("cancelled while backing off", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://greeter/hello", nil)
		_, err := c.HTTPClient().Do(req)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("call = %v, want context.Canceled", err)
		}
	})
	if got := value(c.metrics.failures.WithLabelValues("greeter", "1.2.0")); got != 3 {
		t.Errorf("failures = %v, want 3", got)
	}
}

func TestWatchFollowsTheRegistry(t *testing.T) {
	g := newFakeGateway(t)
	f := newFakeRegistry(t)
	services := []api.Service{svc("greeter", sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive))}
	nodes := []api.Node{nodeRec("n1", g.addr())}
	f.set(services, []api.Container{running("a", "n1", "greeter@1.2.0")}, nodes)
	c := newTestClient(t, f, Config{Version: "1.0.0"})
	routeOf := func() string {
		r, err := c.Route("greeter")
		if err != nil {
			return err.Error()
		}
		return r.Version + " " + r.Container.ID
	}
	if got := routeOf(); got != "1.2.0 a" {
		t.Fatalf("route %q", got)
	}

	// A newer version becomes healthy: one watch round later it is chosen.
	services = []api.Service{svc("greeter",
		sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive),
		sv("greeter", "1.3.0", ">= 1.0, < 2.0", api.VersionActive))}
	containers := []api.Container{running("a", "n1", "greeter@1.2.0"), running("b", "n1", "greeter@1.3.0")}
	f.set(services, containers, nodes)
	waitFor(t, 2*time.Second, "1.3.0 to be chosen", func() bool { return routeOf() == "1.3.0 b" })

	// Its node goes down: back to 1.2.0.
	down := nodeRec("n1", g.addr())
	down.Status = api.NodeDown
	f.set(services, containers, []api.Node{down})
	waitFor(t, 2*time.Second, "no route with the node down", func() bool {
		_, err := c.Route("greeter")
		return errors.Is(err, ErrNoCompatibleVersion)
	})

	// The registry is restored from an older snapshot: its indexes go
	// backwards, and the client starts over from 0 and takes the new state.
	f.restore(services[:1], []api.Container{running("z", "n1", "greeter@1.2.0")}, nodes)
	waitFor(t, 3*time.Second, "the restored state", func() bool { return routeOf() == "1.2.0 z" })
	// And keeps watching from there.
	f.set(services, containers, nodes)
	waitFor(t, 3*time.Second, "a change after the restore", func() bool { return routeOf() == "1.3.0 b" })
}

func TestServesFromTheLastTableWhileTheRegistryIsDown(t *testing.T) {
	g := newFakeGateway(t)
	g.handle("a", serveAs("greeter@1.2.0", "a"))
	g.handle("b", serveAs("greeter@1.3.0", "b"))
	f := newFakeRegistry(t)
	services := []api.Service{svc("greeter", sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive))}
	nodes := []api.Node{nodeRec("n1", g.addr())}
	f.set(services, []api.Container{running("a", "n1", "greeter@1.2.0")}, nodes)
	var logs syncBuffer
	c := newTestClient(t, f, Config{Version: "1.0.0", StaleThreshold: 300 * time.Millisecond, Logger: testLogger(t, &logs)})
	if s := c.Staleness(); s > 100*time.Millisecond {
		t.Fatalf("staleness %s with the registry up", s)
	}

	f.setDown(true)
	downAt := time.Now()
	waitFor(t, 2*time.Second, "the watches to fail", func() bool { return strings.Contains(logs.String(), "registry watch failed") })
	var last time.Duration
	for time.Since(downAt) < 700*time.Millisecond {
		resp, body := get(t, c, "http://greeter/hello")
		if resp.StatusCode != 200 || body != "served by greeter@1.2.0 a" {
			t.Fatalf("with the registry down: %s %q", resp.Status, body)
		}
		s := c.Staleness()
		if s < last {
			t.Fatalf("staleness went from %s down to %s with the registry down", last, s)
		}
		last = s
		time.Sleep(20 * time.Millisecond)
	}
	if last < 500*time.Millisecond {
		t.Errorf("staleness %s after 700ms down", last)
	}
	waitFor(t, 2*time.Second, "the stale warning", func() bool { return strings.Contains(logs.String(), "route table is stale") })
	if got := value(c.metrics.staleness); got < 0.5 {
		t.Errorf("age gauge %v", got)
	}

	// Back: the same watches resume, and see a change made meanwhile.
	f.set([]api.Service{svc("greeter",
		sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive),
		sv("greeter", "1.3.0", ">= 1.0, < 2.0", api.VersionActive))},
		[]api.Container{running("a", "n1", "greeter@1.2.0"), running("b", "n1", "greeter@1.3.0")}, nodes)
	f.setDown(false)
	waitFor(t, 10*time.Second, "the watches to resume", func() bool { return c.Staleness() < 100*time.Millisecond })
	waitFor(t, 2*time.Second, "the table age back under the threshold", func() bool {
		return strings.Contains(logs.String(), "route table is current again")
	})
	if _, body := get(t, c, "http://greeter/hello"); body != "served by greeter@1.3.0 b" {
		t.Errorf("after the registry came back: %q", body)
	}
}

// A server that knows no leader (a restarted one, before its election, has
// not replayed its log and answers an empty state at index 1) is not
// believed: the client keeps its table and counts it as stale.
func TestIgnoresAnswersWithoutLeader(t *testing.T) {
	g := newFakeGateway(t)
	g.handle("a", serveAs("greeter@1.2.0", "a"))
	f := newFakeRegistry(t)
	f.set([]api.Service{svc("greeter", sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive))},
		[]api.Container{running("a", "n1", "greeter@1.2.0")}, []api.Node{nodeRec("n1", g.addr())})
	c := newTestClient(t, f, Config{Version: "1.0.0"})
	f.setNoLeader(true)
	waitFor(t, 2*time.Second, "the table to count as stale", func() bool { return c.Staleness() > 200*time.Millisecond })
	if resp, body := get(t, c, "http://greeter/hello"); resp.StatusCode != 200 || body != "served by greeter@1.2.0 a" {
		t.Fatalf("%s %q", resp.Status, body)
	}
	f.setNoLeader(false)
	waitFor(t, 5*time.Second, "the watches to resume", func() bool { return c.Staleness() < 100*time.Millisecond })
	if r, err := c.Route("greeter"); err != nil || r.Container.ID != "a" {
		t.Fatalf("route %+v, %v", r, err)
	}
}

func TestRouteExplains(t *testing.T) {
	g1, g2 := newFakeGateway(t), newFakeGateway(t)
	f := newFakeRegistry(t)
	services, containers, nodes := twoMajors(g1, g2)
	services[0].Versions = append(services[0].Versions, sv("greeter", "1.5.0", ">= 1.0, < 2.0", api.VersionActive))
	starting := running("c3", "n1", "greeter@1.5.0")
	starting.Status.State = api.ContainerStarting
	f.set(services, append(containers, starting), nodes)
	c := newTestClient(t, f, Config{Version: "1.3.0", Requires: map[string]string{"greeter": "~> 1.2"}})

	r, err := c.Route("greeter")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != "1.2.0" || r.State != api.VersionActive || r.Container.ID != "c1" || r.Container.Gateway != g1.addr() ||
		len(r.Containers) != 1 || r.Client != "web@1.3.0" || r.Requirement != "~> 1.2" {
		t.Fatalf("route %+v", r)
	}
	if !strings.Contains(r.Reason, "highest active version admitting client web@1.3.0") {
		t.Errorf("reason %q", r.Reason)
	}
	why := map[string]string{}
	for _, cd := range r.Candidates {
		why[cd.Version] = cd.Reason
	}
	for v, want := range map[string]string{
		"1.2.0": "chosen",
		"1.5.0": "no running container",
		"2.0.0": `not in clients range ">= 2.0, < 3.0"`,
	} {
		if !strings.Contains(why[v], want) {
			t.Errorf("candidate %s: %q, want %q", v, why[v], want)
		}
	}

	if _, err := c.Route("nosuch"); !errors.Is(err, ErrUnknownService) {
		t.Errorf("Route(nosuch) = %v", err)
	}
}

func TestMetrics(t *testing.T) {
	g1, g2 := newFakeGateway(t), newFakeGateway(t)
	g1.handle("c1", serveAs("greeter@1.2.0", "c1"))
	g2.handle("c2", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set(api.HeaderServedBy, "greeter@2.0.0 c2")
		w.WriteHeader(500)
	})
	f := newFakeRegistry(t)
	f.set(twoMajors(g1, g2))
	c1 := newTestClient(t, f, Config{Version: "1.0.0"})
	c2 := newTestClient(t, f, Config{Version: "2.0.0"})
	reg := prometheus.NewRegistry()
	for _, c := range []*Client{c1, c2} {
		for _, col := range c.Collectors() {
			if err := reg.Register(col); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 3 {
		get(t, c1, "http://greeter/hello")
		get(t, c2, "http://greeter/hello")
	}
	_, _ = c1.HTTPClient().Get("http://nosuch/x")

	for _, tc := range []struct {
		c                *Client
		service, version string
		calls, failures  float64
	}{
		{c1, "greeter", "1.2.0", 3, 0},
		{c2, "greeter", "2.0.0", 3, 3},
		{c1, "", "", 1, 1},
	} {
		if got := value(tc.c.metrics.calls.WithLabelValues(tc.service, tc.version)); got != tc.calls {
			t.Errorf("calls{%s,%s} = %v, want %v", tc.service, tc.version, got, tc.calls)
		}
		if got := value(tc.c.metrics.failures.WithLabelValues(tc.service, tc.version)); got != tc.failures {
			t.Errorf("failures{%s,%s} = %v, want %v", tc.service, tc.version, got, tc.failures)
		}
	}
	n, err := countSeries(reg, "coexist_client_calls_total", "coexist_client_call_duration_seconds", "coexist_client_route_table_age_seconds")
	if err != nil || n != 3+3+2 {
		t.Errorf("gathered %d series (%v), want 8", n, err)
	}
}

func TestClosedClientRefusesCalls(t *testing.T) {
	g1, g2 := newFakeGateway(t), newFakeGateway(t)
	f := newFakeRegistry(t)
	f.set(twoMajors(g1, g2))
	c := newTestClient(t, f, Config{Version: "1.0.0"})
	c.Close()
	c.Close()
	if _, err := c.HTTPClient().Get("http://greeter/hello"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close = %v", err)
	}
}

// Route choice, the hot path, allocates nothing, including while a watch
// swaps the table under it.
func TestRouteChoiceAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation")
	}
	g1, g2 := newFakeGateway(t), newFakeGateway(t)
	f := newFakeRegistry(t)
	f.set(twoMajors(g1, g2))
	c := newTestClient(t, f, Config{Version: "1.3.0", Node: "n1", Requires: map[string]string{"greeter": "~> 1.0"}})
	var err error
	allocs := testing.AllocsPerRun(1000, func() {
		_, _, err = c.choose("greeter")
	})
	if err != nil || allocs != 0 {
		t.Fatalf("choose: %v, %.1f allocations per call", err, allocs)
	}
}

// Calls race with table swaps: run with -race.
func TestConcurrentCallsAndTableSwaps(t *testing.T) {
	ga, gb := newFakeGateway(t), newFakeGateway(t)
	ga.handle("a", serveAs("greeter@1.2.0", "a"))
	gb.handle("b", serveAs("greeter@1.2.0", "b"))
	f := newFakeRegistry(t)
	twoContainers(t, f, ga.addr(), gb.addr())
	c := newTestClient(t, f, Config{Version: "1.0.0"})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if i%2 == 0 {
				twoContainers(t, f, gb.addr(), ga.addr())
			} else {
				twoContainers(t, f, ga.addr(), gb.addr())
			}
		}
	}()
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				resp, err := c.HTTPClient().Get("http://greeter/hello")
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	go func() { time.Sleep(300 * time.Millisecond); close(stop) }()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
