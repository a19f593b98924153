package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

const callTestToken = "call-test-token-0123456789"

// fakeRoutes is a registry that answers the SDK's three watches with fixed
// state (blocking queries wait until the caller goes away), and a gateway
// that answers as the container a call names.
type fakeRoutes struct {
	registry *httptest.Server
	gateway  *httptest.Server

	mu    sync.Mutex
	calls []*http.Request
	// answers maps a container id to its status code.
	answers map[string]int
}

func newFakeRoutes(t *testing.T) *fakeRoutes {
	t.Helper()
	f := &fakeRoutes{answers: map[string]int{"c1": 200, "c2": 200, "c3": 200}}
	f.gateway = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(api.HeaderContainer)
		f.mu.Lock()
		f.calls = append(f.calls, r.Clone(r.Context()))
		code := f.answers[id]
		f.mu.Unlock()
		ver := map[string]string{"c1": "1.2.0", "c2": "1.5.0", "c3": "2.0.0"}[id]
		w.Header().Set(api.HeaderServedBy, "greeter@"+ver+" "+id)
		w.WriteHeader(code)
		w.Write([]byte("hello from " + id + " " + r.URL.Path + "\n"))
	}))
	t.Cleanup(f.gateway.Close)
	gw := strings.TrimPrefix(f.gateway.URL, "http://")

	services := []api.Service{{Name: "greeter", Versions: []api.ServiceVersion{
		{Service: "greeter", Version: "1.2.0", Clients: ">= 1.0, < 2.0", State: api.VersionActive},
		{Service: "greeter", Version: "1.5.0", Clients: ">= 1.0, < 2.0", State: api.VersionActive},
		{Service: "greeter", Version: "2.0.0", Clients: ">= 2.0, < 3.0", State: api.VersionActive},
	}}}
	var containers []api.Container
	for id, ver := range map[string]string{"c1": "1.2.0", "c2": "1.5.0", "c3": "2.0.0"} {
		containers = append(containers, api.Container{ID: id, Node: "n1", Desired: api.DesiredPresent,
			Services: []api.ServiceRef{{Service: "greeter", Version: ver}},
			Status:   &api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:1"}})
	}
	nodes := []api.Node{{ID: "n1", Gateway: gw, Status: api.NodeReady}}
	f.registry = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+callTestToken {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(api.ErrorResponse{Error: "permission denied"})
			return
		}
		if r.URL.Query().Get("index") != "" {
			<-r.Context().Done()
			return
		}
		var v any
		switch r.URL.Path {
		case "/v1/services":
			v = services
		case "/v1/containers":
			v = containers
		case "/v1/nodes":
			v = nodes
		default:
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set(api.HeaderIndex, "5")
		w.Header().Set(api.HeaderKnownLeader, "true")
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(f.registry.Close)
	return f
}

func (f *fakeRoutes) run(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	args = append([]string{args[0], "--addr", f.registry.URL, "--token", callTestToken, "--timeout", "5s"}, args[1:]...)
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (f *fakeRoutes) lastCall(t *testing.T) *http.Request {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		t.Fatal("the gateway got no call")
	}
	return f.calls[len(f.calls)-1]
}

func TestCallPrintsTheAnswer(t *testing.T) {
	f := newFakeRoutes(t)
	code, out, errOut := f.run("call", "--client", "web@1.3.0", "greeter", "/hello")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if want := "status: 200 OK\nserved-by: greeter@1.5.0 c2\n\nhello from c2 /greeter/hello\n"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	r := f.lastCall(t)
	if r.Header.Get(api.HeaderClient) != "web" || r.Header.Get(api.HeaderClientVersion) != "1.3.0" || r.Host != "greeter" {
		t.Errorf("the gateway got client %q version %q host %q", r.Header.Get(api.HeaderClient), r.Header.Get(api.HeaderClientVersion), r.Host)
	}

	// A requirement changes the route, and is sent along.
	code, out, errOut = f.run("call", "--client", "web@1.3.0", "--require", "greeter=< 1.5", "--method", "POST", "--data", "x", "greeter", "hello")
	if code != 0 || !strings.Contains(out, "served-by: greeter@1.2.0 c1\n") {
		t.Fatalf("exit %d: %q %s", code, out, errOut)
	}
	r = f.lastCall(t)
	if r.Method != http.MethodPost || r.Header.Get("Coexist-Client-Require") != "< 1.5" {
		t.Errorf("the gateway got %s with requirement %q", r.Method, r.Header.Get("Coexist-Client-Require"))
	}
}

func TestCallExitsNonZeroUnless2xx(t *testing.T) {
	f := newFakeRoutes(t)
	f.answers["c3"] = http.StatusInternalServerError
	code, out, _ := f.run("call", "--client", "web@2.1.0", "greeter", "/hello")
	if code != 1 || !strings.HasPrefix(out, "status: 500 Internal Server Error\nserved-by: greeter@2.0.0 c3\n\nhello from c3") {
		t.Errorf("exit %d, output %q", code, out)
	}

	code, out, errOut := f.run("call", "--client", "web@3.1.0", "greeter", "/hello")
	if code != 1 || out != "" || !strings.Contains(errOut, `no compatible version of service "greeter" for client web@3.1.0`) {
		t.Errorf("exit %d, output %q, stderr %q", code, out, errOut)
	}
}

func TestCallAndRouteUsage(t *testing.T) {
	f := newFakeRoutes(t)
	for _, args := range [][]string{
		{"call", "greeter"},
		{"call", "--client", "web", "greeter"},
		{"call", "--client", "web@", "greeter"},
		{"call", "--client", "web@1.0.0", "--require", "greeter", "greeter"},
		{"call", "--client", "web@1.0.0"},
		{"route", "--client", "web@1.0.0"},
		{"route", "--client", "web@1.0.0", "a", "b"},
		{"call", "--client", "web@one", "greeter"},
		{"call", "--client", "web@v1.0", "greeter"},
	} {
		if code, _, errOut := f.run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", args, code, errOut)
		}
	}
	if code, _, errOut := f.run("call", "--client", "web@v1.0", "greeter"); code != 2 || !strings.Contains(errOut, `--client "web@v1.0": "v1.0" is not canonical; write "1.0.0"`) {
		t.Errorf("bad version: exit %d, %s", code, errOut)
	}
}

func TestRoutePrintsTheDecision(t *testing.T) {
	f := newFakeRoutes(t)
	code, out, errOut := f.run("route", "--client", "web@1.3.0", "--require", "greeter=~> 1.2.0", "greeter")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"client:     web@1.3.0\n",
		"requires:   ~> 1.2.0\n",
		`version:    1.2.0 (active, clients ">= 1.0, < 2.0")`,
		"container:  c1 on node n1, gateway " + strings.TrimPrefix(f.gateway.URL, "http://"),
		`reason:     highest active version admitting client web@1.3.0 and meeting its requirement "~> 1.2.0"`,
		`2.0.0    active  >= 2.0, < 3.0  1        no         client web@1.3.0 not in clients range ">= 2.0, < 3.0"`,
		`1.5.0    active  >= 1.0, < 2.0  1        no         requirement "~> 1.2.0" not met`,
		`1.2.0    active  >= 1.0, < 2.0  1        yes        chosen: highest active candidate`,
		"1.2.0    c1         n1    yes     0         chosen",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = f.run("route", "--client", "web@0.9.0", "greeter")
	if code != 1 || !strings.Contains(out, "version:    none") || !strings.Contains(errOut, "no compatible version") ||
		!strings.Contains(out, `client web@0.9.0 not in clients range ">= 1.0, < 2.0"`) {
		t.Errorf("exit %d, output %q, stderr %q", code, out, errOut)
	}
}
