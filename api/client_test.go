package api_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// seen is one request as the fake registry received it.
type seen struct {
	Method   string
	Path     string // escaped, as on the wire
	RawQuery string
	Header   http.Header
	Body     []byte
}

// fake is a registry stand-in that records every request and answers with
// handler.
type fake struct {
	t   *testing.T
	srv *httptest.Server

	mu      sync.Mutex
	reqs    []seen
	handler http.HandlerFunc
}

func newFake(t *testing.T, h http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{t: t, handler: h}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, seen{
		Method:   r.Method,
		Path:     r.URL.EscapedPath(),
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Body:     body,
	})
	h := f.handler
	f.mu.Unlock()
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	if h == nil {
		writeJSON(w, http.StatusOK, struct{}{})
		return
	}
	h(w, r)
}

func (f *fake) setHandler(h http.HandlerFunc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handler = h
}

func (f *fake) last() seen {
	f.t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		f.t.Fatal("no request received")
	}
	return f.reqs[len(f.reqs)-1]
}

func (f *fake) client(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(&api.Config{Address: f.srv.URL, Token: token})
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func TestNewClientAddress(t *testing.T) {
	good := map[string]string{
		"":                         "http://127.0.0.1:7700",
		"http://127.0.0.1:7700":    "http://127.0.0.1:7700",
		"http://127.0.0.1:7700/":   "http://127.0.0.1:7700",
		"https://registry.example": "https://registry.example",
		"https://h:7700/prefix/":   "https://h:7700/prefix",
		"http://[::1]:7700":        "http://[::1]:7700",
	}
	for in, want := range good {
		c, err := api.NewClient(&api.Config{Address: in})
		if err != nil {
			t.Errorf("NewClient(%q): %v", in, err)
			continue
		}
		if got := c.Address(); got != want {
			t.Errorf("NewClient(%q).Address() = %q, want %q", in, got, want)
		}
	}
	bad := []string{
		"127.0.0.1:7700",
		"localhost:7700",
		"ftp://127.0.0.1:7700",
		"http://",
		"://x",
		"unix:///tmp/sock",
		"http://127.0.0.1:7700/?x=1",
		"http://user:pw@127.0.0.1:7700",
	}
	for _, in := range bad {
		_, err := api.NewClient(&api.Config{Address: in})
		if err == nil {
			t.Errorf("NewClient(%q): no error", in)
			continue
		}
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", in)) {
			t.Errorf("NewClient(%q): error %q does not name the address", in, err)
		}
	}
}

func TestDefaultConfig(t *testing.T) {
	t.Setenv("COEXIST_ADDR", "")
	t.Setenv("COEXIST_TOKEN", "")
	t.Setenv("COEXIST_CACERT", "")
	t.Setenv("COEXIST_CLIENT_CERT", "")
	t.Setenv("COEXIST_CLIENT_KEY", "")
	cfg := api.DefaultConfig()
	if cfg.Address != "http://127.0.0.1:7700" || cfg.Token != "" || cfg.TLS != (api.TLSConfig{}) {
		t.Fatalf("DefaultConfig() with empty env = %+v", cfg)
	}

	t.Setenv("COEXIST_ADDR", "https://r.example:7700")
	t.Setenv("COEXIST_TOKEN", "s3cret")
	t.Setenv("COEXIST_CACERT", "/ca.pem")
	t.Setenv("COEXIST_CLIENT_CERT", "/cert.pem")
	t.Setenv("COEXIST_CLIENT_KEY", "/key.pem")
	cfg = api.DefaultConfig()
	want := api.TLSConfig{CAFile: "/ca.pem", CertFile: "/cert.pem", KeyFile: "/key.pem"}
	if cfg.Address != "https://r.example:7700" || cfg.Token != "s3cret" || cfg.TLS != want {
		t.Fatalf("DefaultConfig() = %+v", cfg)
	}
}

func TestQueryOptionsEncoding(t *testing.T) {
	tests := []struct {
		name string
		q    *api.QueryOptions
		want string
	}{
		{"nil", nil, ""},
		{"zero", &api.QueryOptions{}, ""},
		{"blocking", &api.QueryOptions{WaitIndex: 42, WaitTime: 30 * time.Second}, "index=42&wait=30s"},
		{"wait only", &api.QueryOptions{WaitTime: 1500 * time.Millisecond}, "wait=1.5s"},
		{"stale", &api.QueryOptions{AllowStale: true}, "stale"},
		{"consistent", &api.QueryOptions{RequireConsistent: true}, "consistent"},
		{"all", &api.QueryOptions{WaitIndex: 7, WaitTime: time.Minute, AllowStale: true}, "index=7&wait=1m0s&stale"},
	}
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, []api.Service{}) })
	c := f.client(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := c.Services().List(context.Background(), tt.q); err != nil {
				t.Fatal(err)
			}
			got := f.last()
			if got.RawQuery != tt.want {
				t.Errorf("query = %q, want %q", got.RawQuery, tt.want)
			}
		})
	}

	// The server side reads bare flags with Query().Has.
	req := httptest.NewRequest("GET", "/v1/services?index=1&stale&consistent", nil)
	if q := req.URL.Query(); !q.Has("stale") || !q.Has("consistent") || q.Get("index") != "1" {
		t.Fatalf("bare flags not readable: %v", q)
	}
}

func TestWriteCAS(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderIndex, "99")
		writeJSON(w, 200, api.Container{ID: "c1"})
	})
	c := f.client(t, "")
	tests := []struct {
		name string
		w    *api.WriteOptions
		want string
	}{
		{"nil", nil, ""},
		{"no cas", &api.WriteOptions{}, ""},
		{"create only", &api.WriteOptions{CAS: api.CAS(0)}, "cas=0"},
		{"cas", &api.WriteOptions{CAS: api.CAS(17)}, "cas=17"},
		{"force", &api.WriteOptions{Force: true}, "force=true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, wm, err := c.Containers().Declare(context.Background(), "c1", api.ContainerRequest{Node: "n1"}, tt.w)
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != "c1" || wm.LastIndex != 99 {
				t.Errorf("got %+v, %+v", got, wm)
			}
			if q := f.last().RawQuery; q != tt.want {
				t.Errorf("query = %q, want %q", q, tt.want)
			}
		})
	}
}

func TestQueryMeta(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderIndex, "1234")
		w.Header().Set(api.HeaderKnownLeader, "true")
		w.Header().Set(api.HeaderLastContact, "250")
		writeJSON(w, 200, []api.Node{{ID: "n1"}})
	})
	c := f.client(t, "")
	nodes, qm, err := c.Nodes().List(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != "n1" {
		t.Errorf("nodes = %+v", nodes)
	}
	if qm.LastIndex != 1234 || !qm.KnownLeader || qm.LastContact != 250*time.Millisecond {
		t.Errorf("meta = %+v", qm)
	}
	if qm.RequestTime <= 0 {
		t.Errorf("RequestTime = %v", qm.RequestTime)
	}

	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderKnownLeader, "false")
		writeJSON(w, 200, []api.Node{})
	})
	_, qm, err = c.Nodes().List(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if qm.LastIndex != 0 || qm.KnownLeader || qm.LastContact != 0 {
		t.Errorf("meta = %+v", qm)
	}

	f.setHandler(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderIndex, "not-a-number")
		writeJSON(w, 200, []api.Node{})
	})
	if _, _, err := c.Nodes().List(context.Background(), nil); err == nil || !strings.Contains(err.Error(), api.HeaderIndex) {
		t.Errorf("bad index header: err = %v", err)
	}
}

func TestAuthorization(t *testing.T) {
	f := newFake(t, nil)
	ctx := context.Background()

	c := f.client(t, "")
	if _, err := c.Nodes().Delete(ctx, "n1", nil); err != nil {
		t.Fatal(err)
	}
	if h := f.last().Header.Get("Authorization"); h != "" {
		t.Errorf("no token: Authorization = %q", h)
	}

	c = f.client(t, "tok-1")
	if c.Token() != "tok-1" {
		t.Errorf("Token() = %q", c.Token())
	}
	if _, err := c.Nodes().Delete(ctx, "n1", nil); err != nil {
		t.Fatal(err)
	}
	if h := f.last().Header.Get("Authorization"); h != "Bearer tok-1" {
		t.Errorf("Authorization = %q", h)
	}

	c.SetToken("tok-2")
	if _, err := c.Nodes().Delete(ctx, "n1", nil); err != nil {
		t.Fatal(err)
	}
	if h := f.last().Header.Get("Authorization"); h != "Bearer tok-2" {
		t.Errorf("after SetToken: Authorization = %q", h)
	}

	if _, err := c.Nodes().Delete(ctx, "n1", &api.WriteOptions{AuthToken: "override"}); err != nil {
		t.Fatal(err)
	}
	if h := f.last().Header.Get("Authorization"); h != "Bearer override" {
		t.Errorf("write override: Authorization = %q", h)
	}
	f.setHandler(func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, api.Token{AccessorID: "a"}) })
	if _, _, err := c.ACL().Self(ctx, &api.QueryOptions{AuthToken: "override2"}); err != nil {
		t.Fatal(err)
	}
	if h := f.last().Header.Get("Authorization"); h != "Bearer override2" {
		t.Errorf("query override: Authorization = %q", h)
	}
}

func TestStatusError(t *testing.T) {
	tests := []struct {
		name      string
		code      int
		body      string
		wantBody  string
		notFound  bool
		conflict  bool
		retryable bool
	}{
		{"json 409", 409, `{"error":"container c1 changed (modify index 12)"}`, "container c1 changed (modify index 12)", false, true, false},
		{"json 404", 404, `{"error":"no such service \"x\""}`, `no such service "x"`, true, false, false},
		{"json 400", 400, `{"error":"services[1].version: not declared"}`, "services[1].version: not declared", false, false, false},
		{"json 503", 503, `{"error":"no leader"}`, "no leader", false, false, true},
		{"raw 502", 502, "Bad Gateway\n", "Bad Gateway", false, false, true},
		{"raw 500", 500, "boom", "boom", false, false, false},
		{"json without error", 403, `{"message":"x"}`, `{"message":"x"}`, false, false, false},
		{"empty", 404, "", "", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.code)
				_, _ = io.WriteString(w, tt.body)
			})
			c := f.client(t, "")
			_, _, err := c.Services().Info(context.Background(), "orders", nil)
			var se *api.StatusError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *StatusError", err, err)
			}
			if se.Code != tt.code || se.Body != tt.wantBody {
				t.Errorf("StatusError = %+v, want code %d body %q", se, tt.code, tt.wantBody)
			}
			wantMsg := fmt.Sprintf("unexpected response code %d: %s", tt.code, tt.wantBody)
			if tt.wantBody == "" {
				wantMsg = fmt.Sprintf("unexpected response code %d", tt.code)
			}
			if err.Error() != wantMsg {
				t.Errorf("Error() = %q, want %q", err.Error(), wantMsg)
			}
			if api.IsNotFound(err) != tt.notFound || api.IsConflict(err) != tt.conflict || api.IsRetryable(err) != tt.retryable {
				t.Errorf("IsNotFound=%v IsConflict=%v IsRetryable=%v", api.IsNotFound(err), api.IsConflict(err), api.IsRetryable(err))
			}
			// Still recognised once wrapped by a caller.
			wrapped := fmt.Errorf("read service: %w", err)
			if api.IsNotFound(wrapped) != tt.notFound || api.IsConflict(wrapped) != tt.conflict || api.IsRetryable(wrapped) != tt.retryable {
				t.Errorf("wrapped: predicates differ")
			}
		})
	}
}

func TestIsRetryableConnection(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more

	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Nodes().List(context.Background(), nil)
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	if !api.IsRetryable(err) {
		t.Errorf("connection refused not retryable: %v", err)
	}
	if api.IsNotFound(err) || api.IsConflict(err) {
		t.Errorf("connection error taken for a status: %v", err)
	}

	// A server that hangs up without answering.
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	_, _, err = f.client(t, "").Nodes().List(context.Background(), nil)
	if err == nil || !api.IsRetryable(err) {
		t.Errorf("hang-up: err = %v, retryable = %v", err, api.IsRetryable(err))
	}

	for _, e := range []error{nil, errors.New("other"), context.Canceled, fmt.Errorf("x: %w", context.DeadlineExceeded)} {
		if api.IsRetryable(e) {
			t.Errorf("IsRetryable(%v) = true", e)
		}
	}
}

func TestBlockingQueryCancel(t *testing.T) {
	arrived := make(chan struct{})
	release := make(chan struct{})
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	c := f.client(t, "")

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := c.Containers().List(ctx, "n1", &api.QueryOptions{WaitIndex: 5, WaitTime: 5 * time.Minute})
		errc <- err
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("blocking query never reached the server")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if api.IsRetryable(err) {
			t.Errorf("cancelled query is retryable")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the blocking query")
	}
	if q := f.last().RawQuery; q != "index=5&node=n1&wait=5m0s" {
		t.Errorf("query = %q", q)
	}
}

func TestPathEscaping(t *testing.T) {
	// The server's own mux must get the original segments back.
	var gotService, gotVersion string
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/services/{service}/versions/{version}", func(w http.ResponseWriter, r *http.Request) {
		gotService, gotVersion = r.PathValue("service"), r.PathValue("version")
		writeJSON(w, 200, api.ServiceVersion{Service: gotService, Version: gotVersion})
	})
	f := newFake(t, mux.ServeHTTP)
	c := f.client(t, "")
	sv, _, err := c.Services().Declare(context.Background(), "a/b c?", "1.0.0+meta", api.VersionRequest{Clients: ">= 1.0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/v1/services/a%2Fb%20c%3F/versions/1.0.0+meta"; f.last().Path != want {
		t.Errorf("path = %q, want %q", f.last().Path, want)
	}
	if gotService != "a/b c?" || gotVersion != "1.0.0+meta" || sv.Service != "a/b c?" {
		t.Errorf("server saw %q %q", gotService, gotVersion)
	}

	for _, id := range []string{"", ".", ".."} {
		if _, _, err := c.Containers().Info(context.Background(), id, nil); err == nil {
			t.Errorf("Info(%q): no error", id)
		}
	}
}

func TestAddressPrefix(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, api.Node{ID: "x/y"}) })
	c, err := api.NewClient(&api.Config{Address: f.srv.URL + "/registry/"})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Nodes().Info(context.Background(), "x/y", nil); err != nil {
		t.Fatal(err)
	}
	if p := f.last().Path; p != "/registry/v1/nodes/x%2Fy" {
		t.Errorf("path = %q", p)
	}
}

func TestRouteParams(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.Route{Service: "orders", Version: "1.4.2", Containers: []api.RouteContainer{{ID: "c1"}}})
	})
	c := f.client(t, "")
	rt, _, err := c.Route(context.Background(), api.RouteRequest{
		Service:       "orders",
		Client:        "web",
		ClientVersion: "2.1.0",
		Requires:      map[string]string{"payments": ">= 1.1", "orders": "~> 1.4"},
	}, &api.QueryOptions{AllowStale: true})
	if err != nil {
		t.Fatal(err)
	}
	if rt.Version != "1.4.2" || len(rt.Containers) != 1 {
		t.Errorf("route = %+v", rt)
	}
	want := "client=web&client_version=2.1.0&require=orders%3A~%3E+1.4&require=payments%3A%3E%3D+1.1&service=orders&stale"
	if q := f.last().RawQuery; q != want {
		t.Errorf("query = %q\nwant    %q", q, want)
	}
	req := httptest.NewRequest("GET", "/v1/route?"+want, nil)
	if got := req.URL.Query()["require"]; len(got) != 2 || got[0] != "orders:~> 1.4" || got[1] != "payments:>= 1.1" {
		t.Errorf("server reads require = %q", got)
	}

	if _, _, err := c.Route(context.Background(), api.RouteRequest{}, nil); err == nil {
		t.Error("Route without service: no error")
	}
}

func TestContainersListNodeFilter(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, []api.Container{}) })
	c := f.client(t, "")
	ctx := context.Background()
	if _, _, err := c.Containers().List(ctx, "", nil); err != nil {
		t.Fatal(err)
	}
	if q := f.last().RawQuery; q != "" {
		t.Errorf("no node: query = %q", q)
	}
	if _, _, err := c.Containers().List(ctx, "node 1", nil); err != nil {
		t.Fatal(err)
	}
	if q := f.last().RawQuery; q != "node=node+1" {
		t.Errorf("node filter: query = %q", q)
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.Leader{ID: "s1"})
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	c, err := api.NewClient(&api.Config{Address: srv.URL, TLS: api.TLSConfig{CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	l, _, err := c.Status().Leader(context.Background(), nil)
	if err != nil {
		t.Fatalf("with CA: %v", err)
	}
	if l.ID != "s1" {
		t.Errorf("leader = %+v", l)
	}

	// Without the CA the certificate is not trusted, and that is no reason
	// to retry.
	c, err = api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err = c.Status().Leader(context.Background(), nil); err == nil {
		t.Fatal("untrusted certificate accepted")
	} else if api.IsRetryable(err) {
		t.Errorf("TLS verification failure is retryable: %v", err)
	}

	// A copy of the caller's own http.Client gets the TLS settings.
	own := &http.Client{Timeout: time.Minute}
	c, err = api.NewClient(&api.Config{Address: srv.URL, HTTPClient: own, TLS: api.TLSConfig{CAFile: ca}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Status().Leader(context.Background(), nil); err != nil {
		t.Fatalf("own client with CA: %v", err)
	}
	if own.Transport != nil {
		t.Error("caller's http.Client was modified")
	}

	missing := filepath.Join(dir, "nope.pem")
	notPEM := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(notPEM, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		tls  api.TLSConfig
		want string
	}{
		"missing CA":   {api.TLSConfig{CAFile: missing}, missing},
		"CA not PEM":   {api.TLSConfig{CAFile: notPEM}, notPEM},
		"missing cert": {api.TLSConfig{CertFile: missing, KeyFile: ca}, missing},
		"missing key":  {api.TLSConfig{CertFile: ca, KeyFile: missing}, missing},
		"cert alone":   {api.TLSConfig{CertFile: ca}, "together"},
		"bad key pair": {api.TLSConfig{CertFile: ca, KeyFile: notPEM}, notPEM},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := api.NewClient(&api.Config{Address: srv.URL, TLS: tc.tls})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
