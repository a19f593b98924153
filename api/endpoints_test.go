package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// TestEndpoints calls every method of the client against a mux holding the
// routes of the registry contract, and checks the route that matched, the
// body sent and the value decoded.
func TestEndpoints(t *testing.T) {
	ctx := context.Background()
	type tc struct {
		name    string
		pattern string // the server route that must match
		respond any    // answered as JSON; nil means an empty object
		body    any    // the JSON body the client must send; nil means none
		call    func(c *api.Client) (any, error)
		want    any // what call must return; nil to skip
	}
	started := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []tc{
		{
			name: "services list", pattern: "GET /v1/services",
			respond: []api.Service{{Name: "orders", Versions: []api.ServiceVersion{{Service: "orders", Version: "1.0.0", Clients: ">= 1.0", State: api.VersionActive}}}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Services().List(ctx, nil)
				return v, err
			},
			want: []api.Service{{Name: "orders", Versions: []api.ServiceVersion{{Service: "orders", Version: "1.0.0", Clients: ">= 1.0", State: api.VersionActive}}}},
		},
		{
			name: "services info", pattern: "GET /v1/services/{service}",
			respond: api.Service{Name: "orders"},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Services().Info(ctx, "orders", nil)
				return v, err
			},
			want: &api.Service{Name: "orders"},
		},
		{
			name: "services declare", pattern: "PUT /v1/services/{service}/versions/{version}",
			respond: api.ServiceVersion{Service: "orders", Version: "1.4.2", Clients: ">= 1.0, < 2.0", State: api.VersionActive},
			body:    api.VersionRequest{Clients: ">= 1.0, < 2.0", Description: "d"},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Services().Declare(ctx, "orders", "1.4.2", api.VersionRequest{Clients: ">= 1.0, < 2.0", Description: "d"}, nil)
				return v, err
			},
			want: &api.ServiceVersion{Service: "orders", Version: "1.4.2", Clients: ">= 1.0, < 2.0", State: api.VersionActive},
		},
		{
			name: "services retire", pattern: "DELETE /v1/services/{service}/versions/{version}",
			respond: api.ServiceVersion{Service: "orders", Version: "1.4.2", State: api.VersionDraining, DrainStartedAt: &started},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Services().Retire(ctx, "orders", "1.4.2", nil)
				return v, err
			},
			want: &api.ServiceVersion{Service: "orders", Version: "1.4.2", State: api.VersionDraining, DrainStartedAt: &started},
		},
		{
			name: "containers list", pattern: "GET /v1/containers",
			respond: []api.Container{{ID: "c1", Node: "n1"}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Containers().List(ctx, "n1", nil)
				return v, err
			},
			want: []api.Container{{ID: "c1", Node: "n1"}},
		},
		{
			name: "containers info", pattern: "GET /v1/containers/{id}",
			respond: api.Container{ID: "c1", DrainTimeout: api.Duration(30 * time.Second)},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Containers().Info(ctx, "c1", nil)
				return v, err
			},
			want: &api.Container{ID: "c1", DrainTimeout: api.Duration(30 * time.Second)},
		},
		{
			name: "containers declare", pattern: "PUT /v1/containers/{id}",
			respond: api.Container{ID: "c1", Desired: api.DesiredPresent},
			body: api.ContainerRequest{
				Node:     "n1",
				Services: []api.ServiceRef{{Service: "orders", Version: "1.4.2"}},
				Driver:   "exec",
				Config:   api.DriverConfig{Command: "/bin/orders", Env: map[string]string{"A": "b"}},
				Health:   &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(time.Second)},
			},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Containers().Declare(ctx, "c1", api.ContainerRequest{
					Node:     "n1",
					Services: []api.ServiceRef{{Service: "orders", Version: "1.4.2"}},
					Driver:   "exec",
					Config:   api.DriverConfig{Command: "/bin/orders", Env: map[string]string{"A": "b"}},
					Health:   &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(time.Second)},
				}, &api.WriteOptions{CAS: api.CAS(0)})
				return v, err
			},
			want: &api.Container{ID: "c1", Desired: api.DesiredPresent},
		},
		{
			name: "containers delete", pattern: "DELETE /v1/containers/{id}",
			respond: api.Container{ID: "c1", Desired: api.DesiredDeleted},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Containers().Delete(ctx, "c1", nil)
				return v, err
			},
			want: &api.Container{ID: "c1", Desired: api.DesiredDeleted},
		},
		{
			name: "containers status", pattern: "PUT /v1/containers/{id}/status",
			respond: api.Container{ID: "c1", Status: &api.ContainerStatus{State: api.ContainerRunning}},
			body: api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:21001", PID: 42, StartedAt: &started,
				Services: []api.ServiceStatus{{Service: "orders", Version: "1.4.2", State: api.ServiceServing, Inflight: 3}}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Containers().UpdateStatus(ctx, "c1", api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:21001", PID: 42, StartedAt: &started,
					Services: []api.ServiceStatus{{Service: "orders", Version: "1.4.2", State: api.ServiceServing, Inflight: 3}}}, nil)
				return v, err
			},
			want: &api.Container{ID: "c1", Status: &api.ContainerStatus{State: api.ContainerRunning}},
		},
		{
			name: "nodes list", pattern: "GET /v1/nodes",
			respond: []api.Node{{ID: "n1", Status: api.NodeReady}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Nodes().List(ctx, nil)
				return v, err
			},
			want: []api.Node{{ID: "n1", Status: api.NodeReady}},
		},
		{
			name: "nodes info", pattern: "GET /v1/nodes/{id}",
			respond: api.Node{ID: "n1", Labels: map[string]string{"zone": "a"}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Nodes().Info(ctx, "n1", nil)
				return v, err
			},
			want: &api.Node{ID: "n1", Labels: map[string]string{"zone": "a"}},
		},
		{
			name: "nodes register", pattern: "PUT /v1/nodes/{id}",
			respond: api.Node{ID: "n1", Address: "10.0.0.1", Gateway: "10.0.0.1:7800", Status: api.NodeReady},
			body:    api.NodeRequest{Address: "10.0.0.1", Gateway: "10.0.0.1:7800"},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Nodes().Register(ctx, "n1", api.NodeRequest{Address: "10.0.0.1", Gateway: "10.0.0.1:7800"}, nil)
				return v, err
			},
			want: &api.Node{ID: "n1", Address: "10.0.0.1", Gateway: "10.0.0.1:7800", Status: api.NodeReady},
		},
		{
			name: "nodes heartbeat", pattern: "PUT /v1/nodes/{id}/heartbeat",
			respond: api.Node{ID: "n1", Status: api.NodeReady},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Nodes().Heartbeat(ctx, "n1", nil)
				return v, err
			},
			want: &api.Node{ID: "n1", Status: api.NodeReady},
		},
		{
			name: "nodes delete", pattern: "DELETE /v1/nodes/{id}",
			call: func(c *api.Client) (any, error) {
				_, err := c.Nodes().Delete(ctx, "n1", nil)
				return nil, err
			},
		},
		{
			name: "route", pattern: "GET /v1/route",
			respond: api.Route{Service: "orders", Version: "1.4.2", Containers: []api.RouteContainer{{ID: "c1", Node: "n1", Gateway: "g"}}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Route(ctx, api.RouteRequest{Service: "orders", ClientVersion: "1.0.0"}, nil)
				return v, err
			},
			want: &api.Route{Service: "orders", Version: "1.4.2", Containers: []api.RouteContainer{{ID: "c1", Node: "n1", Gateway: "g"}}},
		},
		{
			name: "status leader", pattern: "GET /v1/status/leader",
			respond: api.Leader{ID: "s1", RaftAddr: "127.0.0.1:7701"},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Status().Leader(ctx, nil)
				return v, err
			},
			want: &api.Leader{ID: "s1", RaftAddr: "127.0.0.1:7701"},
		},
		{
			name: "status peers", pattern: "GET /v1/status/peers",
			respond: []api.Peer{{ID: "s1", Leader: true, Suffrage: "Voter"}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.Status().Peers(ctx, nil)
				return v, err
			},
			want: []api.Peer{{ID: "s1", Leader: true, Suffrage: "Voter"}},
		},
		{
			name: "cluster join", pattern: "POST /v1/cluster/join",
			body: api.JoinRequest{ID: "s2", RaftAddr: "127.0.0.1:8701", HTTPAddr: "http://127.0.0.1:8700"},
			call: func(c *api.Client) (any, error) {
				_, err := c.Cluster().Join(ctx, api.JoinRequest{ID: "s2", RaftAddr: "127.0.0.1:8701", HTTPAddr: "http://127.0.0.1:8700"}, nil)
				return nil, err
			},
		},
		{
			name: "cluster remove peer", pattern: "DELETE /v1/cluster/peers/{id}",
			call: func(c *api.Client) (any, error) {
				_, err := c.Cluster().RemovePeer(ctx, "s2", nil)
				return nil, err
			},
		},
		{
			name: "acl create", pattern: "POST /v1/acl/tokens",
			respond: api.Token{AccessorID: "a1", SecretID: "s1", Role: api.RoleAgent, Node: "n1"},
			body:    api.TokenRequest{Role: api.RoleAgent, Node: "n1"},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.ACL().CreateToken(ctx, api.TokenRequest{Role: api.RoleAgent, Node: "n1"}, nil)
				return v, err
			},
			want: &api.Token{AccessorID: "a1", SecretID: "s1", Role: api.RoleAgent, Node: "n1"},
		},
		{
			name: "acl list", pattern: "GET /v1/acl/tokens",
			respond: []api.Token{{AccessorID: "a1", Role: api.RoleRead}},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.ACL().ListTokens(ctx, nil)
				return v, err
			},
			want: []api.Token{{AccessorID: "a1", Role: api.RoleRead}},
		},
		{
			name: "acl delete", pattern: "DELETE /v1/acl/tokens/{accessor_id}",
			call: func(c *api.Client) (any, error) {
				_, err := c.ACL().DeleteToken(ctx, "a1", nil)
				return nil, err
			},
		},
		{
			name: "acl self", pattern: "GET /v1/acl/token/self",
			respond: api.Token{AccessorID: "a0", Role: api.RoleManagement},
			call: func(c *api.Client) (any, error) {
				v, _, err := c.ACL().Self(ctx, nil)
				return v, err
			},
			want: &api.Token{AccessorID: "a0", Role: api.RoleManagement},
		},
	}

	var (
		mu      sync.Mutex
		matched string
	)
	mux := http.NewServeMux()
	for _, tt := range cases {
		mux.HandleFunc(tt.pattern, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			matched = r.Pattern
			mu.Unlock()
			w.Header().Set(api.HeaderIndex, "77")
			if tt.respond == nil {
				writeJSON(w, 200, struct{}{})
				return
			}
			writeJSON(w, 200, tt.respond)
		})
	}
	f := newFake(t, mux.ServeHTTP)
	c := f.client(t, "tok")

	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			matched = ""
			mu.Unlock()
			got, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			m := matched
			mu.Unlock()
			if m != tt.pattern {
				t.Errorf("server matched %q, want %q (path %s)", m, tt.pattern, f.last().Path)
			}
			sent := f.last()
			if tt.body == nil {
				if len(sent.Body) != 0 {
					t.Errorf("sent body %s, want none", sent.Body)
				}
			} else {
				want, _ := json.Marshal(tt.body)
				if !bytes.Equal(bytes.TrimSpace(sent.Body), want) {
					t.Errorf("sent body\n %s\nwant\n %s", sent.Body, want)
				}
				if ct := sent.Header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
			}
			if h := sent.Header.Get("Authorization"); h != "Bearer tok" {
				t.Errorf("Authorization = %q", h)
			}
			if tt.want != nil && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestWriteMeta(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderIndex, "501")
		writeJSON(w, 200, struct{}{})
	})
	wm, err := f.client(t, "").Cluster().RemovePeer(context.Background(), "s3", nil)
	if err != nil {
		t.Fatal(err)
	}
	if wm.LastIndex != 501 || wm.RequestTime <= 0 {
		t.Errorf("meta = %+v", wm)
	}

	// A write answered 200 with no body at all is fine when nothing is read.
	f.setHandler(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	if _, err := f.client(t, "").Cluster().Join(context.Background(), api.JoinRequest{ID: "s2"}, nil); err != nil {
		t.Errorf("join with empty answer: %v", err)
	}
	// But an answer that should carry a value and does not is an error.
	if _, _, err := f.client(t, "").Nodes().Heartbeat(context.Background(), "n1", nil); err == nil {
		t.Error("heartbeat with empty answer: no error")
	}
}

func TestSnapshot(t *testing.T) {
	state := []byte("\x00\x01snapshot bytes\xff")
	var restored []byte
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderIndex, "12")
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(state)
	})
	mux.HandleFunc("PUT /v1/snapshot", func(w http.ResponseWriter, r *http.Request) {
		restored, _ = io.ReadAll(r.Body)
		w.Header().Set(api.HeaderIndex, "13")
		writeJSON(w, 200, struct{}{})
	})
	f := newFake(t, mux.ServeHTTP)
	c := f.client(t, "tok")
	ctx := context.Background()

	rc, qm, err := c.Snapshot().Save(ctx, &api.QueryOptions{AllowStale: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, state) || qm.LastIndex != 12 {
		t.Errorf("save: %q index %d", got, qm.LastIndex)
	}
	if q := f.last().RawQuery; q != "stale" {
		t.Errorf("save query = %q", q)
	}

	wm, err := c.Snapshot().Restore(ctx, bytes.NewReader(got), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(restored, state) || wm.LastIndex != 13 {
		t.Errorf("restore: %q index %d", restored, wm.LastIndex)
	}
	if ct := f.last().Header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Errorf("restore Content-Type = %q", ct)
	}

	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 403, api.ErrorResponse{Error: "permission denied"})
	})
	if _, _, err := c.Snapshot().Save(ctx, nil); !api.IsUnauthorized(err) {
		t.Errorf("save denied: err = %v", err)
	}
}
