package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/gateway"
	"github.com/coexist-dev/coexist/routing"
)

// BenchmarkRouteChoice is the SDK's own choice of a route for a call: one
// atomic load of the table and routing.Select, for a client on a node, with
// a requirement, on a table of 3 versions with 8 containers each on 4 nodes.
// Goal: at most 100 ns/op and 0 allocs/op.
func BenchmarkRouteChoice(b *testing.B) {
	f := newFakeRegistry(b)
	var nodes []api.Node
	for n := range 4 {
		nodes = append(nodes, nodeRec(fmt.Sprintf("n%d", n), fmt.Sprintf("127.0.0.%d:7780", n+1)))
	}
	var versions []api.ServiceVersion
	var containers []api.Container
	for i, v := range []string{"1.2.0", "1.3.0", "2.0.0"} {
		clients := ">= 1.0, < 2.0"
		if v == "2.0.0" {
			clients = ">= 2.0, < 3.0"
		}
		versions = append(versions, sv("greeter", v, clients, api.VersionActive))
		for c := range 8 {
			containers = append(containers, running(fmt.Sprintf("c%d-%d", i, c), nodes[c%4].ID, "greeter@"+v))
		}
	}
	f.set([]api.Service{svc("greeter", versions...), svc("orders", sv("orders", "1.0.0", ">= 0.0", api.VersionActive))}, containers, nodes)
	for _, bc := range []struct {
		name     string
		node     string
		requires map[string]string
	}{
		{"any-node", "", nil},
		{"own-node", "n1", nil},
		{"own-node-requirement", "n1", map[string]string{"greeter": "~> 1.2"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := newTestClient(b, f, Config{Version: "1.4.0", Node: bc.node, Requires: bc.requires, Logger: hclog.NewNullLogger()})
			b.ReportAllocs()
			for b.Loop() {
				_, r, err := c.choose("greeter")
				if err != nil || r.Version != "1.3.0" {
					b.Fatalf("choose = %s, %v", r.Version, err)
				}
			}
		})
	}
}

// callBench is a real gateway (gateway.Gateway) in front of one backend
// container, both in this process on loopback, the SDK client routing to
// them, and a plain http.Client calling the same gateway and container with
// the same headers.
type callBench struct {
	sdk   *http.Client
	plain *http.Client
	gwURL string
}

func newCallBench(b *testing.B) *callBench {
	b.Helper()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "hello, world (greeter 1.2.0)\n")
	}))
	b.Cleanup(backend.Close)

	var table atomicTable
	gw, err := gateway.NewGateway(gateway.GatewayConfig{NodeID: "n1", Table: table.load, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	gwSrv := httptest.NewServer(gw)
	b.Cleanup(gwSrv.Close)
	gwAddr := strings.TrimPrefix(gwSrv.URL, "http://")

	services := []api.Service{svc("greeter", sv("greeter", "1.2.0", ">= 1.0, < 2.0", api.VersionActive))}
	ct := running("c1", "n1", "greeter@1.2.0")
	ct.Status.Endpoint = strings.TrimPrefix(backend.URL, "http://")
	containers := []api.Container{ct}
	nodes := []api.Node{nodeRec("n1", gwAddr)}
	table.store(routing.NewTable(services, containers, nodes))

	f := newFakeRegistry(b)
	f.set(services, containers, nodes)
	c := newTestClient(b, f, Config{Version: "1.3.0", Logger: hclog.NewNullLogger()})
	cb := &callBench{
		sdk:   c.HTTPClient(),
		plain: &http.Client{Transport: DefaultTransport()},
		gwURL: gwSrv.URL,
	}
	// Both paths answer, and from the same container.
	for _, call := range []func() (*http.Response, error){cb.routed, cb.direct} {
		resp, err := call()
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get(api.HeaderServedBy) != "greeter@1.2.0 c1" {
			b.Fatalf("%s served by %q: %s", resp.Status, resp.Header.Get(api.HeaderServedBy), body)
		}
	}
	return cb
}

func (cb *callBench) routed() (*http.Response, error) {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, "http://greeter/hello?name=world", nil)
	return cb.sdk.Do(req)
}

func (cb *callBench) direct() (*http.Response, error) {
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, cb.gwURL+"/greeter/hello?name=world", nil)
	req.Header[api.HeaderClient] = []string{"web"}
	req.Header[api.HeaderClientVersion] = []string{"1.3.0"}
	req.Header[api.HeaderContainer] = []string{"c1"}
	return cb.plain.Do(req)
}

func timed(b *testing.B, call func() (*http.Response, error)) time.Duration {
	start := time.Now()
	resp, err := call()
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("status %s", resp.Status)
	}
	return took
}

// BenchmarkCall compares a call routed through the SDK with a plain
// http.Client call to the same gateway and container. "interleaved" makes
// one of each per iteration, alternating which goes first, and reports both
// medians and their ratio (goal: routed/plain at most 1.05).
func BenchmarkCall(b *testing.B) {
	cb := newCallBench(b)
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			timed(b, cb.direct)
		}
	})
	b.Run("routed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			timed(b, cb.routed)
		}
	})
	b.Run("interleaved", func(b *testing.B) {
		var plain, routed []time.Duration
		i := 0
		for b.Loop() {
			if i%2 == 0 {
				plain = append(plain, timed(b, cb.direct))
				routed = append(routed, timed(b, cb.routed))
			} else {
				routed = append(routed, timed(b, cb.routed))
				plain = append(plain, timed(b, cb.direct))
			}
			i++
		}
		p, r := median(plain), median(routed)
		b.ReportMetric(float64(p.Nanoseconds()), "plain-median-ns")
		b.ReportMetric(float64(r.Nanoseconds()), "routed-median-ns")
		b.ReportMetric(float64(r)/float64(p), "routed/plain")
	})
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// atomicTable is the gateway's table source in the benchmark.
type atomicTable struct{ p atomicPointer }

func (a *atomicTable) load() *routing.Table   { return a.p.Load() }
func (a *atomicTable) store(t *routing.Table) { a.p.Store(t) }

type atomicPointer = atomic.Pointer[routing.Table]
