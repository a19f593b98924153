package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// deadURL is the URL of a server that no longer listens.
func deadURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

func multiClient(t *testing.T, refresh time.Duration, urls ...string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: strings.Join(urls, ","), RefreshServers: refresh})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fake) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.reqs)
}

func TestParseAddresses(t *testing.T) {
	got, err := api.ParseAddresses(" http://a:7700/, http://b:7700,http://a:7700 ,")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"http://a:7700", "http://b:7700"}; !slices.Equal(got, want) {
		t.Fatalf("ParseAddresses = %q, want %q", got, want)
	}
	if got, _ := api.ParseAddresses(""); !slices.Equal(got, []string{api.DefaultAddress}) {
		t.Fatalf("ParseAddresses(\"\") = %q", got)
	}
	if _, err := api.ParseAddresses("http://a:7700,b:7700"); err == nil || !strings.Contains(err.Error(), `"b:7700"`) {
		t.Fatalf("a bad address in a list: err = %v", err)
	}
	c := multiClient(t, 0, "http://a:7700", "http://b:7700")
	if got := c.Servers(); !slices.Equal(got, []string{"http://a:7700", "http://b:7700"}) {
		t.Fatalf("Servers() = %q", got)
	}
}

// TestFailoverDeadServer: a request to a server that refuses connections
// goes to the next one, which then stays the current server.
func TestFailoverDeadServer(t *testing.T) {
	live := newFake(t, nil)
	dead := deadURL(t)
	c := multiClient(t, 0, dead, live.srv.URL)
	if _, _, err := c.Nodes().Heartbeat(context.Background(), "n1", nil); err != nil {
		t.Fatalf("heartbeat with the first server dead: %v", err)
	}
	if live.count() != 1 || c.Address() != live.srv.URL {
		t.Fatalf("requests to the live server = %d, current server %s", live.count(), c.Address())
	}
	// Even a POST goes elsewhere when it never reached a server.
	c2 := multiClient(t, 0, dead, live.srv.URL)
	if _, err := c2.Cluster().Join(context.Background(), api.JoinRequest{ID: "s2", RaftAddr: "x:1"}, nil); err != nil {
		t.Fatalf("join with the first server dead: %v", err)
	}
}

// TestFailoverOn503: a 503 (no leader known) sends reads and idempotent
// writes to the next server, but not a POST or a check-and-set write, which
// may have been applied.
func TestFailoverOn503(t *testing.T) {
	sick := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusServiceUnavailable, api.ErrorResponse{Error: "no leader known"})
	})
	for _, tt := range []struct {
		name  string
		call  func(c *api.Client) error
		moves bool
	}{
		{"GET", func(c *api.Client) error { _, _, err := c.Status().Leader(context.Background(), nil); return err }, true},
		{"PUT", func(c *api.Client) error {
			_, _, err := c.Nodes().Heartbeat(context.Background(), "n1", nil)
			return err
		}, true},
		{"DELETE", func(c *api.Client) error { _, err := c.Nodes().Delete(context.Background(), "n1", nil); return err }, true},
		{"PUT with cas", func(c *api.Client) error {
			_, _, err := c.Containers().Declare(context.Background(), "c1", api.ContainerRequest{Node: "n1"}, &api.WriteOptions{CAS: api.CAS(0)})
			return err
		}, false},
		{"POST", func(c *api.Client) error {
			_, err := c.Cluster().Join(context.Background(), api.JoinRequest{ID: "s2", RaftAddr: "x:1"}, nil)
			return err
		}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			live := newFake(t, nil)
			err := tt.call(multiClient(t, 0, sick.srv.URL, live.srv.URL))
			switch {
			case tt.moves && (err != nil || live.count() != 1):
				t.Fatalf("err = %v, requests to the next server = %d; want it answered there", err, live.count())
			case !tt.moves && (err == nil || live.count() != 0 || !api.IsRetryable(err)):
				t.Fatalf("err = %v, requests to the next server = %d; want the 503 and no second try", err, live.count())
			}
		})
	}
}

// TestFailoverHungServer: a server that accepts the request and never
// answers does not hold a request with a deadline past its share of it: the
// next server answers within the deadline.
func TestFailoverHungServer(t *testing.T) {
	release := make(chan struct{})
	hung := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	live := newFake(t, nil)
	c := multiClient(t, 0, hung.srv.URL, live.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if _, _, err := c.Nodes().Heartbeat(ctx, "n1", nil); err != nil {
		t.Fatalf("heartbeat with the first server hung: %v (after %s)", err, time.Since(start))
	}
	if live.count() != 1 || c.Address() != live.srv.URL {
		t.Fatalf("requests to the live server = %d, current server %s", live.count(), c.Address())
	}
}

// TestFailoverWithoutLeader: an answer that says its server knows no leader
// is returned, and the next request goes to another server.
func TestFailoverWithoutLeader(t *testing.T) {
	lost := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderKnownLeader, "false")
		writeJSON(w, http.StatusOK, []api.Node{})
	})
	live := newFake(t, nil)
	c := multiClient(t, 0, lost.srv.URL, live.srv.URL)
	_, meta, err := c.Nodes().List(context.Background(), &api.QueryOptions{AllowStale: true})
	if err != nil || meta.KnownLeader {
		t.Fatalf("err = %v, meta = %+v", err, meta)
	}
	if c.Address() != live.srv.URL {
		t.Fatalf("current server %s after an answer without a leader, want %s", c.Address(), live.srv.URL)
	}
}

// TestLearnServersFromPeers: a client given one server learns the others
// from /v1/status/peers and fails over to them when its own server dies;
// without RefreshServers it keeps to the one it was given.
func TestLearnServersFromPeers(t *testing.T) {
	other := newFake(t, nil)
	var given *fake
	given = newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/status/peers" {
			writeJSON(w, http.StatusOK, []api.Peer{
				{ID: "s1", HTTPAddr: given.srv.URL, Leader: true},
				{ID: "s2", HTTPAddr: other.srv.URL},
				{ID: "s3"}, // an address not recorded yet
			})
			return
		}
		writeJSON(w, http.StatusOK, []api.Node{})
	})
	learner := multiClient(t, time.Minute, given.srv.URL)
	keeper := multiClient(t, 0, given.srv.URL)
	for _, c := range []*api.Client{learner, keeper} {
		if _, _, err := c.Nodes().List(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for !slices.Equal(learner.Servers(), []string{given.srv.URL, other.srv.URL}) {
		if time.Now().After(deadline) {
			t.Fatalf("servers learned: %q", learner.Servers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	given.srv.Close()
	if _, _, err := learner.Nodes().Heartbeat(context.Background(), "n1", nil); err != nil {
		t.Fatalf("heartbeat after the given server died: %v", err)
	}
	if other.count() != 1 {
		t.Fatalf("requests to the learned server = %d", other.count())
	}
	if got := keeper.Servers(); len(got) != 1 {
		t.Fatalf("a client without RefreshServers learned %q", got)
	}
	if _, _, err := keeper.Nodes().Heartbeat(context.Background(), "n1", nil); err == nil {
		t.Fatal("a client without RefreshServers reached a server it was not given")
	}
}

// TestBlockingQueryKeepsItsDeadline: a blocking query whose caller's
// deadline is sized for its wait is not cut short to leave time for other
// servers: the server that holds it answers.
func TestBlockingQueryKeepsItsDeadline(t *testing.T) {
	holding := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Second)
		w.Header().Set(api.HeaderIndex, "6")
		w.Header().Set(api.HeaderKnownLeader, "true")
		writeJSON(w, http.StatusOK, []api.Node{})
	})
	other := newFake(t, nil)
	c := multiClient(t, 0, holding.srv.URL, other.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_, meta, err := c.Nodes().List(ctx, &api.QueryOptions{WaitIndex: 5, WaitTime: time.Second})
	if err != nil || meta.LastIndex != 6 {
		t.Fatalf("blocking query: meta %+v, err %v", meta, err)
	}
	if other.count() != 0 {
		t.Fatalf("the blocking query was cut and sent to the other server")
	}
}

// TestAttemptLimitSparesTheBody: an attempt's limit bounds the wait for the
// answer's head; a body that takes longer to arrive is read whole.
func TestAttemptLimitSparesTheBody(t *testing.T) {
	slow := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`[{"id": "n1",`))
		http.NewResponseController(w).Flush()
		time.Sleep(1300 * time.Millisecond)
		_, _ = w.Write([]byte(` "status": "ready"}]`))
	})
	other := newFake(t, nil)
	c := multiClient(t, 0, slow.srv.URL, other.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second) // 1s for the first server
	defer cancel()
	nodes, _, err := c.Nodes().List(ctx, nil)
	if err != nil || len(nodes) != 1 || nodes[0].ID != "n1" {
		t.Fatalf("nodes %+v, err %v", nodes, err)
	}
}

// TestWriteNotResentAfterNoAnswer: a write that a server took and did not
// answer in time is not sent to another server, since the first copy may
// still be applied later (a paused server that resumes forwards it to the
// leader), after writes acknowledged since: resending it would turn an
// unknown outcome into an acknowledgement that a stale copy then undoes.
// The error says the outcome is unknown, and the next request goes to
// another server. Found by the host test bed (internal/hostbed, a paused
// leader). A heartbeat, whose late copy only renews a TTL, still fails
// over (TestFailoverHungServer).
func TestWriteNotResentAfterNoAnswer(t *testing.T) {
	release := make(chan struct{})
	hung := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	live := newFake(t, nil)
	c := multiClient(t, 0, hung.srv.URL, live.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _, err := c.Services().Declare(ctx, "greeter", "1.0.0", api.VersionRequest{Clients: ">= 1.0"}, nil)
	if err == nil || live.count() != 0 {
		t.Fatalf("declare with the first server hung: err = %v, requests to the next server = %d; want an error and no second copy", err, live.count())
	}
	if c.Address() != live.srv.URL {
		t.Fatalf("current server %s after no answer, want %s", c.Address(), live.srv.URL)
	}
	if _, _, err := c.Services().Declare(context.Background(), "greeter", "1.1.0", api.VersionRequest{Clients: ">= 1.0"}, nil); err != nil || live.count() != 1 {
		t.Fatalf("next declare: err = %v, requests to the next server = %d", err, live.count())
	}
}
