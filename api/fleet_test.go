package api_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestWatchFleetIgnoresAnswersWithoutLeader: a server that knows no leader
// (a restarted one, before it replayed its log) answers with empty tables;
// the watcher never hands them on, says why through OnError, and asks again
// without blocking.
func TestWatchFleetIgnoresAnswersWithoutLeader(t *testing.T) {
	paths := map[string]api.FleetTable{"/v1/services": api.FleetServices, "/v1/containers": api.FleetContainers, "/v1/nodes": api.FleetNodes}
	var mu sync.Mutex
	queries := map[api.FleetTable][]string{} // the index parameter of each query
	tokens := map[api.FleetTable][]string{}
	full := map[string]any{
		"/v1/services":   []api.Service{{Name: "greeter"}},
		"/v1/containers": []api.Container{{ID: "g1"}},
		"/v1/nodes":      []api.Node{{ID: "n1"}},
	}
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		table, ok := paths[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		mu.Lock()
		queries[table] = append(queries[table], r.URL.Query().Get("index"))
		tokens[table] = append(tokens[table], r.Header.Get("Authorization"))
		n := len(queries[table])
		mu.Unlock()
		// 1: the leader's answer at 5; 2: a restarted server without a
		// leader, empty, at 1; then the leader's again, at 10, blocking
		// once it is known.
		switch {
		case n == 1:
			w.Header().Set(api.HeaderIndex, "5")
			w.Header().Set(api.HeaderKnownLeader, "true")
			writeJSON(w, 200, full[r.URL.Path])
		case n == 2:
			w.Header().Set(api.HeaderIndex, "1")
			w.Header().Set(api.HeaderKnownLeader, "false")
			writeJSON(w, 200, []struct{}{})
		default:
			if r.URL.Query().Get("index") == "10" {
				select {
				case <-r.Context().Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
			w.Header().Set(api.HeaderIndex, strconv.Itoa(10))
			w.Header().Set(api.HeaderKnownLeader, "true")
			writeJSON(w, 200, full[r.URL.Path])
		}
	})
	c := f.client(t, "")

	var got sync.Map // table -> []int: the length of each table handed on
	record := func(t api.FleetTable, n int) {
		v, _ := got.LoadOrStore(t, &[]int{})
		mu.Lock()
		*v.(*[]int) = append(*v.(*[]int), n)
		mu.Unlock()
	}
	var noLeader, answers [api.NumFleetTables]int
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		api.WatchFleet(ctx, c, api.FleetConfig{
			Watch:   api.WatchConfig{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond},
			Prepare: func(t api.FleetTable, q *api.QueryOptions) { q.AuthToken = "tok-" + t.String() },
			OnError: func(t api.FleetTable, err error, _ time.Duration) {
				if errors.Is(err, api.ErrNoLeader) {
					mu.Lock()
					noLeader[t]++
					mu.Unlock()
				}
			},
			OnAnswer: func(t api.FleetTable, _ *api.QueryMeta) {
				mu.Lock()
				answers[t]++
				mu.Unlock()
			},
			OnServices:   func(v []api.Service, _ *api.QueryMeta) { record(api.FleetServices, len(v)) },
			OnContainers: func(v []api.Container, _ *api.QueryMeta) { record(api.FleetContainers, len(v)) },
			OnNodes:      func(v []api.Node, _ *api.QueryMeta) { record(api.FleetNodes, len(v)) },
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		enough := len(queries[api.FleetServices]) >= 5 && len(queries[api.FleetContainers]) >= 5 && len(queries[api.FleetNodes]) >= 5
		mu.Unlock()
		if enough {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the watches made too few queries")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("WatchFleet did not return after its context ended")
	}

	mu.Lock()
	defer mu.Unlock()
	for table := range api.NumFleetTables {
		v, _ := got.Load(table)
		var handed []int
		if v != nil {
			handed = *v.(*[]int)
		}
		// The leader's table at 5, then at 10 (the two may be handed on as
		// one while another table's watch fails); never the empty one.
		if !slices.Equal(handed, []int{1, 1}) && !slices.Equal(handed, []int{1}) {
			t.Errorf("%s: handed on tables of lengths %v, want [1 1] or [1]", table, handed)
		}
		if noLeader[table] != 1 {
			t.Errorf("%s: OnError told of %d answers without a leader, want 1", table, noLeader[table])
		}
		if answers[table] < 3 {
			t.Errorf("%s: OnAnswer told of %d answers, want every answer taken", table, answers[table])
		}
		// After the ignored answer the watch asks without blocking, then
		// blocks at the leader's index.
		if q := queries[table][:4]; !slices.Equal(q, []string{"", "5", "", "10"}) {
			t.Errorf("%s: queries at index %q, want [\"\" 5 \"\" 10]", table, q)
		}
		for i, tok := range tokens[table] {
			if tok != "Bearer tok-"+table.String() {
				t.Errorf("%s: query %d carries %q: Prepare was not applied", table, i, tok)
			}
		}
	}
}

// TestWatchFleetAskSendsAgain: closing the channel Ask gave ends the
// blocking query of that table at once and sends it again, prepared afresh
// (a client that starts calling a service says so in Coexist-Calls without
// waiting for its blocking query to end), with the same index.
func TestWatchFleetAskSendsAgain(t *testing.T) {
	type query struct{ index, calls string }
	var mu sync.Mutex
	var got []query
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/services" {
			w.Header().Set(api.HeaderIndex, "1")
			w.Header().Set(api.HeaderKnownLeader, "true")
			writeJSON(w, 200, []struct{}{})
			return
		}
		mu.Lock()
		got = append(got, query{r.URL.Query().Get("index"), r.Header.Get(api.HeaderCalls)})
		mu.Unlock()
		if r.URL.Query().Get("index") == "5" {
			select { // a blocking query that would last 30 s
			case <-r.Context().Done():
				return
			case <-time.After(30 * time.Second):
			}
		}
		w.Header().Set(api.HeaderIndex, "5")
		w.Header().Set(api.HeaderKnownLeader, "true")
		writeJSON(w, 200, []api.Service{{Name: "greeter"}})
	})
	var callsMu sync.Mutex
	calls := []string{}
	grew := make(chan struct{})
	ident := &api.Identity{Instance: "i1", Client: "web", ClientVersion: "1.0.0", Calls: func() []string {
		callsMu.Lock()
		defer callsMu.Unlock()
		return slices.Clone(calls)
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		api.WatchFleet(ctx, f.client(t, "tok"), api.FleetConfig{
			Watch:   api.WatchConfig{WaitTime: 30 * time.Second},
			Prepare: func(_ api.FleetTable, q *api.QueryOptions) { q.Identity = ident },
			Ask: func(t api.FleetTable) <-chan struct{} {
				if t != api.FleetServices {
					return nil
				}
				callsMu.Lock()
				defer callsMu.Unlock()
				return grew
			},
		})
	}()
	waitUntil := func(what string, ok func([]query) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			q := slices.Clone(got)
			mu.Unlock()
			if ok(q) {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%s; queries: %+v", what, got)
	}
	waitUntil("the blocking query", func(q []query) bool { return len(q) >= 2 && q[1].index == "5" })
	callsMu.Lock()
	calls = append(calls, "greeter")
	close(grew)
	grew = make(chan struct{})
	callsMu.Unlock()
	waitUntil("the query sent again with the new call and the same index", func(q []query) bool {
		return len(q) >= 3 && q[2].index == "5" && q[2].calls == "greeter"
	})
	cancel()
	<-done
}

// TestWatchFleetHoldsChangesWhileATableFails: while the containers watch
// fails, a change of services is held, not handed on, so that a router is
// never built from services of after an outage and containers of before it
// (a state no registry ever had: the host test bed saw ~2 s of "no running
// container"). Once containers answer again, both are handed on. And when
// the registry comes back after every watch failed, the first watch to
// reach it wakes the others from their backoff.
func TestWatchFleetHoldsChangesWhileATableFails(t *testing.T) {
	var mu sync.Mutex
	phase := 1 // 1: all up at 5; 2: containers fail, services at 6; 3: all at 6; 4: all down; 5: all up at 7
	var queries = map[string][]time.Time{}
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		p := phase
		queries[r.URL.Path] = append(queries[r.URL.Path], time.Now())
		mu.Unlock()
		if p == 4 || ((p == 2 || p == 15) && r.URL.Path == "/v1/containers") {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "down"})
			return
		}
		idx := map[int]int{1: 5, 15: 5, 2: 6, 3: 6, 5: 7}[p]
		if r.URL.Query().Get("index") == strconv.Itoa(idx) {
			select { // a blocking query with nothing new
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		n := 1
		if p >= 2 && p != 15 && (p != 2 || r.URL.Path != "/v1/containers") {
			n = 2
		}
		if p == 5 {
			n = 3
		}
		w.Header().Set(api.HeaderIndex, strconv.Itoa(idx))
		w.Header().Set(api.HeaderKnownLeader, "true")
		list := make([]struct{}, n)
		writeJSON(w, 200, list)
	})
	var got [api.NumFleetTables]atomicInt
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		api.WatchFleet(ctx, f.client(t, "tok"), api.FleetConfig{
			Watch:        api.WatchConfig{WaitTime: time.Second, MinBackoff: 2 * time.Second, MaxBackoff: 2 * time.Second},
			OnServices:   func(v []api.Service, _ *api.QueryMeta) { got[api.FleetServices].set(len(v)) },
			OnContainers: func(v []api.Container, _ *api.QueryMeta) { got[api.FleetContainers].set(len(v)) },
			OnNodes:      func(v []api.Node, _ *api.QueryMeta) { got[api.FleetNodes].set(len(v)) },
		})
	}()
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: handed on services %d, containers %d, nodes %d", what, got[0].get(), got[1].get(), got[2].get())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	setPhase := func(p int) { mu.Lock(); phase = p; mu.Unlock() }
	waitFor("the first tables", 5*time.Second, func() bool { return got[0].get() == 1 && got[1].get() == 1 && got[2].get() == 1 })

	setPhase(15)
	time.Sleep(300 * time.Millisecond) // the containers watch fails
	setPhase(2)
	// Services and nodes answer at 6 within their 1 s wait; containers fail.
	time.Sleep(1500 * time.Millisecond)
	if s, c := got[api.FleetServices].get(), got[api.FleetContainers].get(); s != 1 || c != 1 {
		t.Fatalf("while containers fail: services %d, containers %d handed on; want the old 1 and 1 (the new services held)", s, c)
	}
	setPhase(3)
	waitFor("every table once containers answer", 5*time.Second, func() bool {
		return got[0].get() == 2 && got[1].get() == 2 && got[2].get() == 2
	})

	setPhase(4)
	time.Sleep(1500 * time.Millisecond) // every watch fails and backs off 1-2 s
	mu.Lock()
	healed := time.Now()
	phase = 5
	mu.Unlock()
	waitFor("every table after the outage", 5*time.Second, func() bool {
		return got[0].get() == 3 && got[1].get() == 3 && got[2].get() == 3
	})
	// The first watch back woke the others: all three asked within a
	// moment of each other, not spread over their 1-2 s backoffs.
	mu.Lock()
	var first, last time.Time
	for _, path := range []string{"/v1/services", "/v1/containers", "/v1/nodes"} {
		var at time.Time
		for _, q := range queries[path] {
			if q.After(healed) {
				at = q
				break
			}
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
	}
	mu.Unlock()
	if spread := last.Sub(first); spread > 300*time.Millisecond {
		t.Errorf("after the outage the watches asked %s apart; the first back should wake the others", spread)
	}
	cancel()
	<-done
}

type atomicInt struct {
	mu sync.Mutex
	n  int
}

func (a *atomicInt) set(n int) { a.mu.Lock(); a.n = n; a.mu.Unlock() }
func (a *atomicInt) get() int  { a.mu.Lock(); defer a.mu.Unlock(); return a.n }
