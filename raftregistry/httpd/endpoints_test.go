package httpd

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

var containerBody = `{"node":"n2","services":[{"service":"orders","version":"2.0.0"}],
	"config":{"command":"/bin/orders","args":["--port","0"],"env":{"A":"b"}},
	"health":{"http":"/healthz","interval":"2s"},"drain_timeout":"45s"}`

// TestEndpoints runs the happy path of every endpoint, each on a fresh
// server.
func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name, method, path, token, body string
		check                           func(t *testing.T, e *testEnv, r *response)
	}{
		{name: "list services", method: "GET", path: "/v1/services", token: readSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got []api.Service
				r.decode(t, &got)
				if len(got) != 1 || got[0].Name != "orders" || len(got[0].Versions) != 2 ||
					got[0].Versions[0].Version != "1.0.0" || got[0].Versions[1].Version != "2.0.0" {
					t.Errorf("services = %+v", got)
				}
				wantIndex(t, r, e.fake.st.Index(state.TableServices))
			}},
		{name: "get service", method: "GET", path: "/v1/services/orders", token: readSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Service
				r.decode(t, &got)
				if got.Name != "orders" || len(got.Versions) != 2 || got.Versions[0].Clients != ">= 1.0, < 2.0" {
					t.Errorf("service = %+v", got)
				}
			}},
		{name: "declare version", method: "PUT", path: "/v1/services/payments/versions/1.2.3", token: opSecret,
			body: `{"clients":"~> 1.0","description":"first"}`,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.ServiceVersion
				r.decode(t, &got)
				if got.Service != "payments" || got.Version != "1.2.3" || got.Clients != "~> 1.0" ||
					got.Description != "first" || got.State != api.VersionActive {
					t.Errorf("version = %+v", got)
				}
				wantIndex(t, r, got.ModifyIndex)
			}},
		{name: "retire version", method: "DELETE", path: "/v1/services/orders/versions/2.0.0", token: opSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.ServiceVersion
				r.decode(t, &got)
				if got.State != api.VersionDraining || got.DrainStartedAt == nil {
					t.Errorf("version = %+v", got)
				}
			}},
		{name: "list containers", method: "GET", path: "/v1/containers", token: opSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got []api.Container
				r.decode(t, &got)
				if len(got) != 1 || got[0].ID != "c1" || got[0].Config.Env["SECRET"] != envSecret {
					t.Errorf("containers = %+v", got)
				}
				wantIndex(t, r, e.fake.st.Index(state.TableContainers))
			}},
		{name: "list containers of a node", method: "GET", path: "/v1/containers?node=n2", token: readSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				if strings.TrimSpace(r.body) != "[]" {
					t.Errorf("body = %s, want []", r.body)
				}
			}},
		{name: "get container", method: "GET", path: "/v1/containers/c1", token: mgmtSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Container
				r.decode(t, &got)
				if got.ID != "c1" || got.Node != "n1" || got.Desired != api.DesiredPresent || got.Driver != "exec" {
					t.Errorf("container = %+v", got)
				}
			}},
		{name: "put container", method: "PUT", path: "/v1/containers/c2?cas=0", token: opSecret, body: containerBody,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Container
				r.decode(t, &got)
				if got.ID != "c2" || got.Node != "n2" || got.DrainTimeout.Std().String() != "45s" ||
					got.Health == nil || got.Health.Timeout.Std().String() != "1s" || got.Config.Env["A"] != "b" {
					t.Errorf("container = %+v", got)
				}
				wantIndex(t, r, got.ModifyIndex)
			}},
		{name: "delete container", method: "DELETE", path: "/v1/containers/c1", token: opSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Container
				r.decode(t, &got)
				if got.ID != "c1" || got.Desired != api.DesiredDeleted {
					t.Errorf("container = %+v", got)
				}
			}},
		{name: "container status", method: "PUT", path: "/v1/containers/c1/status", token: agent1Secret,
			body: `{"state":"running","endpoint":"127.0.0.1:21001","pid":42,"services":[{"service":"orders","version":"1.0.0","state":"serving","inflight":3}]}`,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Container
				r.decode(t, &got)
				if got.Status == nil || got.Status.State != api.ContainerRunning || got.Status.PID != 42 ||
					got.Status.UpdatedAt == nil || len(got.Status.Services) != 1 || got.Status.Services[0].Inflight != 3 {
					t.Errorf("status = %+v", got.Status)
				}
				if got.Config.Env["SECRET"] != envSecret {
					t.Errorf("the agent of the container's node sees env %v", got.Config.Env)
				}
			}},
		{name: "list nodes", method: "GET", path: "/v1/nodes", token: agent2Secret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got []api.Node
				r.decode(t, &got)
				if len(got) != 2 || got[0].ID != "n1" || got[1].ID != "n2" || got[0].Status != api.NodeReady {
					t.Errorf("nodes = %+v", got)
				}
			}},
		{name: "get node", method: "GET", path: "/v1/nodes/n2", token: readSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Node
				r.decode(t, &got)
				if got.ID != "n2" || got.Gateway != "10.0.0.2:8080" {
					t.Errorf("node = %+v", got)
				}
			}},
		{name: "register node", method: "PUT", path: "/v1/nodes/n1", token: agent1Secret,
			body: `{"address":"10.0.0.9","gateway":"10.0.0.9:8080","labels":{"zone":"a"}}`,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Node
				r.decode(t, &got)
				if got.ID != "n1" || got.Address != "10.0.0.9" || got.Labels["zone"] != "a" || got.Status != api.NodeReady {
					t.Errorf("node = %+v", got)
				}
			}},
		{name: "heartbeat", method: "PUT", path: "/v1/nodes/n1/heartbeat", token: agent1Secret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Node
				r.decode(t, &got)
				if got.ID != "n1" || got.Status != api.NodeReady {
					t.Errorf("node = %+v", got)
				}
				if r.header.Get(api.HeaderIndex) == "" {
					t.Error("no index header")
				}
			}},
		{name: "purge node", method: "DELETE", path: "/v1/nodes/n1?force=true", token: opSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				if strings.TrimSpace(r.body) != "{}" {
					t.Errorf("body = %s", r.body)
				}
				if _, n, _ := e.fake.st.Node("n1"); n != nil {
					t.Error("node n1 still there")
				}
				if _, c, _ := e.fake.st.Container("c1"); c != nil {
					t.Error("container c1 of n1 still there")
				}
			}},
		{name: "status leader", method: "GET", path: "/v1/status/leader",
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Leader
				r.decode(t, &got)
				if got.ID != "s1" {
					t.Errorf("leader = %+v", got)
				}
			}},
		{name: "status peers", method: "GET", path: "/v1/status/peers",
			check: func(t *testing.T, e *testEnv, r *response) {
				var got []api.Peer
				r.decode(t, &got)
				if len(got) != 1 || !got[0].Leader {
					t.Errorf("peers = %+v", got)
				}
			}},
		{name: "join", method: "POST", path: "/v1/cluster/join", token: mgmtSecret,
			body: `{"id":"s2","raft_addr":"127.0.0.1:7711","http_addr":"http://127.0.0.1:7710"}`,
			check: func(t *testing.T, e *testEnv, r *response) {
				if strings.TrimSpace(r.body) != "{}" {
					t.Errorf("body = %s", r.body)
				}
				if len(e.fake.joins) != 1 || e.fake.joins[0].ID != "s2" || e.fake.joins[0].HTTPAddr != "http://127.0.0.1:7710" {
					t.Errorf("joins = %+v", e.fake.joins)
				}
			}},
		{name: "remove peer", method: "DELETE", path: "/v1/cluster/peers/s2", token: mgmtSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				if len(e.fake.removed) != 1 || e.fake.removed[0] != "s2" {
					t.Errorf("removed = %v", e.fake.removed)
				}
			}},
		{name: "create token", method: "POST", path: "/v1/acl/tokens", token: mgmtSecret,
			body: `{"role":"agent","node":"n7","description":"agent of n7"}`,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Token
				r.decode(t, &got)
				if got.Role != api.RoleAgent || got.Node != "n7" || len(got.SecretID) != 64 || len(got.AccessorID) != 36 {
					t.Fatalf("token = %+v", got)
				}
				stored := e.fake.st.TokenBySecretHash(hashOf(got.SecretID))
				if stored == nil || stored.AccessorID != got.AccessorID {
					t.Fatalf("token not stored under the hash of its secret")
				}
				// The new secret works at once.
				self := e.do("GET", "/v1/acl/token/self", got.SecretID, "")
				if self.code != http.StatusOK || !strings.Contains(self.body, got.AccessorID) || strings.Contains(self.body, got.SecretID) {
					t.Errorf("self = %d %s", self.code, self.body)
				}
			}},
		{name: "list tokens", method: "GET", path: "/v1/acl/tokens", token: mgmtSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got []api.Token
				r.decode(t, &got)
				if len(got) != 4 {
					t.Errorf("tokens = %+v", got)
				}
				for _, tk := range got {
					if tk.SecretID != "" {
						t.Errorf("token %s lists its secret", tk.AccessorID)
					}
				}
				if strings.Contains(r.body, "secret") {
					t.Errorf("token list mentions secrets: %s", r.body)
				}
			}},
		{name: "delete token", method: "DELETE", path: "/v1/acl/tokens/read-accessor", token: mgmtSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				if e.fake.st.TokenBySecretHash(hashOf(readSecret)) != nil {
					t.Error("token still there")
				}
				if got := e.do("GET", "/v1/services", readSecret, ""); got.code != http.StatusUnauthorized {
					t.Errorf("revoked token answered %d", got.code)
				}
			}},
		{name: "token self, management", method: "GET", path: "/v1/acl/token/self", token: mgmtSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				if strings.TrimSpace(r.body) != `{"accessor_id":"management","role":"management","create_index":0,"modify_index":0}` {
					t.Errorf("self = %s", r.body)
				}
			}},
		{name: "token self, agent", method: "GET", path: "/v1/acl/token/self", token: agent1Secret,
			check: func(t *testing.T, e *testEnv, r *response) {
				var got api.Token
				r.decode(t, &got)
				if got.AccessorID != "agent-n1-accessor" || got.Node != "n1" || got.SecretID != "" {
					t.Errorf("self = %+v", got)
				}
			}},
		{name: "save snapshot", method: "GET", path: "/v1/snapshot", token: mgmtSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
					t.Errorf("content type %q", ct)
				}
				snap, err := state.ReadSnapshot(strings.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				if !snap.Equal(e.fake.st.Snapshot()) {
					t.Error("snapshot differs from the state")
				}
			}},
		{name: "metrics", method: "GET", path: "/v1/metrics", token: readSecret,
			check: func(t *testing.T, e *testEnv, r *response) {
				// A first request, so that the counters have a series.
				e.do("GET", "/v1/services", readSecret, "")
				r = e.do("GET", "/v1/metrics", readSecret, "")
				for _, want := range []string{
					`coexist_http_requests_total{code="2xx",method="GET",route="/v1/services"} 1`,
					`coexist_http_request_duration_seconds_bucket{method="GET",route="/v1/services",le="+Inf"} 1`,
					`coexist_state_table_records{table="nodes"} 2`,
					`coexist_state_table_records{table="tokens"} 4`,
					`coexist_state_table_index{table="containers"} ` + strconv.FormatUint(e.fake.st.Index(state.TableContainers), 10),
					`coexist_raft_is_leader 1`,
				} {
					if !strings.Contains(r.body, want) {
						t.Errorf("metrics lack %q", want)
					}
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.do(tc.method, tc.path, tc.token, tc.body)
			if r.code != http.StatusOK {
				t.Fatalf("%s %s = %d %s", tc.method, tc.path, r.code, r.body)
			}
			tc.check(t, e, r)
		})
	}
}

func wantIndex(t *testing.T, r *response, want uint64) {
	t.Helper()
	if got := r.header.Get(api.HeaderIndex); got != strconv.FormatUint(want, 10) {
		t.Errorf("%s = %q, want %d", api.HeaderIndex, got, want)
	}
}

func TestReadHeaders(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v1/nodes", readSecret, "")
	if r.header.Get(api.HeaderKnownLeader) != "true" || r.header.Get(api.HeaderLastContact) != "0" {
		t.Errorf("headers = %v", r.header)
	}
	wantIndex(t, r, e.fake.st.Index(state.TableNodes))
}

func TestRestoreSnapshot(t *testing.T) {
	e := newEnv(t)
	saved := e.do("GET", "/v1/snapshot", mgmtSecret, "")
	if saved.code != http.StatusOK {
		t.Fatalf("save = %d %s", saved.code, saved.body)
	}
	if r := e.do("DELETE", "/v1/nodes/n1?force", opSecret, ""); r.code != http.StatusOK {
		t.Fatalf("purge = %d %s", r.code, r.body)
	}
	r := e.do("PUT", "/v1/snapshot", mgmtSecret, saved.body)
	if r.code != http.StatusOK {
		t.Fatalf("restore = %d %s", r.code, r.body)
	}
	if _, n, _ := e.fake.st.Node("n1"); n == nil {
		t.Error("restore did not bring node n1 back")
	}
	bad := e.do("PUT", "/v1/snapshot", mgmtSecret, `{"version":99}`)
	if bad.code != http.StatusBadRequest || !strings.Contains(bad.errorMessage(t), "unsupported version 99") {
		t.Errorf("bad snapshot = %d %s", bad.code, bad.body)
	}
}

func TestUnmatched(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/v1/nothing", readSecret, "")
	if r.code != http.StatusNotFound || r.errorMessage(t) != "no such endpoint: GET /v1/nothing" {
		t.Errorf("404 = %d %s", r.code, r.body)
	}
	r = e.do("POST", "/v1/services", readSecret, "")
	if r.code != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET" {
		t.Errorf("405 = %d %v %s", r.code, r.header, r.body)
	}
}

func TestRoute(t *testing.T) {
	e := newEnv(t)
	report := func(id, node, token, version string) {
		t.Helper()
		body := mustJSON(t, api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:21001",
			Services: []api.ServiceStatus{{Service: "orders", Version: version, State: api.ServiceServing}}})
		if r := e.do("PUT", "/v1/containers/"+id+"/status", token, body); r.code != http.StatusOK {
			t.Fatalf("status = %d %s", r.code, r.body)
		}
	}
	report("c1", "n1", agent1Secret, "1.0.0")
	if r := e.do("PUT", "/v1/containers/c2", opSecret, containerBody); r.code != http.StatusOK {
		t.Fatalf("put c2 = %d %s", r.code, r.body)
	}
	report("c2", "n2", agent2Secret, "2.0.0")

	for _, tc := range []struct {
		name, query string
		code        int
		version     string
		msg         string
	}{
		{"v1 client", "service=orders&client=web&client_version=1.5.0", 200, "1.0.0", ""},
		{"v2 client", "service=orders&client=web&client_version=2.1.0", 200, "2.0.0", ""},
		{"requirement", "service=orders&client=web&client_version=2.1.0&require=orders:<+2.0", 404, "",
			`no compatible version of service "orders" for client web@2.1.0 requiring "< 2.0": 1.0.0 (active, clients ">= 1.0, < 2.0"), 2.0.0 (active, clients ">= 2.0", excluded by requirement)`},
		{"no compatible", "service=orders&client=web&client_version=0.9.0", 404, "",
			`no compatible version of service "orders" for client web@0.9.0: 1.0.0 (active, clients ">= 1.0, < 2.0"), 2.0.0 (active, clients ">= 2.0")`},
		{"unknown service", "service=payments&client_version=1.0.0", 404, "", `unknown service "payments"`},
		{"bad client version", "service=orders&client_version=one", 400, "",
			`client_version: "one" is not a valid version: write a semantic version such as 1.4.2 (malformed version: one)`},
		{"non-canonical client version", "service=orders&client=web&client_version=1.5", 400, "",
			`client_version: "1.5" is not canonical; write "1.5.0"`},
		{"unsatisfiable requirement", "service=orders&client=web&client_version=1.5.0&require=orders:%3E%3D+2.0,+%3C+1.0", 400, "",
			`require[orders]: ">= 2.0, < 1.0" admits no version`},
		{"no service", "client_version=1.0.0", 400, "", "service: must not be empty"},
		{"bad require", "service=orders&client_version=1.0.0&require=orders", 400, "",
			`require: "orders" is not service:range, e.g. orders:~> 1.4`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("GET", "/v1/route?"+tc.query, readSecret, "")
			if r.code != tc.code {
				t.Fatalf("code = %d %s, want %d", r.code, r.body, tc.code)
			}
			if tc.code != 200 {
				if got := r.errorMessage(t); got != tc.msg {
					t.Errorf("error = %q\nwant    %q", got, tc.msg)
				}
				return
			}
			var got api.Route
			r.decode(t, &got)
			if got.Version != tc.version || len(got.Containers) != 1 || got.Reason == "" {
				t.Errorf("route = %+v", got)
			}
			want := max(e.fake.st.Index(state.TableServices), e.fake.st.Index(state.TableContainers), e.fake.st.Index(state.TableNodes))
			wantIndex(t, r, want)
		})
	}
}

// TestWriteResultWithoutValue checks the fallback to the local replica when
// a Store's Result does not carry the record written.
func TestWriteResultWithoutValue(t *testing.T) {
	f := newFakeStore()
	seed(t, f)
	var idx uint64 = 100
	f.applyFn = func(_ context.Context, cmd state.Command) (state.Result, error) {
		idx++
		res := f.st.Apply(idx, cmd)
		res.Value = nil
		return res, nil
	}
	e := startEnv(t, f)
	r := e.do("PUT", "/v1/services/payments/versions/1.0.0", opSecret, `{"clients":">= 1.0"}`)
	if r.code != http.StatusOK {
		t.Fatalf("declare = %d %s", r.code, r.body)
	}
	var got api.ServiceVersion
	r.decode(t, &got)
	if got.Service != "payments" || got.ModifyIndex != 101 {
		t.Errorf("version = %+v", got)
	}
	wantIndex(t, r, 101)
}
