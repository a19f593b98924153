package httpd

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/raftregistry/state"
)

// rejected checks that err is a client error: 400, or 413 for size.
func rejected(t *testing.T, body []byte, err error) {
	t.Helper()
	code, msg := statusOf(err)
	if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
		t.Fatalf("body %q: error %v answers %d, want 400", body, err, code)
	}
	if msg == "" {
		t.Fatalf("body %q: empty error message", body)
	}
}

func FuzzDecodeContainerRequest(f *testing.F) {
	for _, s := range []string{
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"}}`,
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"},{"service":"pay","version":"2.0.0-rc.1"}],
		  "driver":"exec","config":{"command":"/bin/x","args":["-a"],"env":{"K":"v"}},
		  "health":{"http":"/healthz","interval":"1s","timeout":"500ms"},"restart":{"attempts":3,"delay":"1s","max_delay":"1m"},
		  "drain_timeout":"30s"}`,
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"},"drain_timeout":30000000000}`,
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"},{"service":"orders","version":"2.0.0"}],"config":{"command":"x"}}`,
		`{"node":"N1"}`,
		`{"node":1}`,
		`{"services":"orders"}`,
		`{"drain_timeout":"soon"}`,
		`{"health":{"interval":"-1h"}}`,
		`{"config":{"env":{"":"x","A=B":"y"}}}`,
		`{"x":1}`,
		`[]`,
		`null`,
		`{`,
		``,
		`{} {}`,
		"{\"node\":\"n1\x00\"}",
	} {
		f.Add([]byte(s))
	}
	e := fuzzEnv(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		spec, err := parseContainer("c9", body)
		if err != nil {
			rejected(t, body, err)
		} else if err := state.ValidateContainer("c9", &spec); err != nil {
			t.Fatalf("body %q accepted but the spec is invalid: %v", body, err)
		}
		// The whole handler never answers 5xx to any body.
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("PUT", "/v1/containers/c9", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+mgmtSecret)
		e.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
	})
}

func FuzzDecodeVersionRequest(f *testing.F) {
	for _, s := range []string{
		`{"clients":">= 1.0, < 2.0","description":"first"}`,
		`{"clients":"~> 1.4"}`,
		`{"clients":""}`,
		`{"clients":">= banana"}`,
		`{"clients":1}`,
		`{"clients":">= 1.0","colour":"red"}`,
		`{"description":"` + string(bytes.Repeat([]byte("x"), 2000)) + `"}`,
		`"clients"`,
		`{"clients":">= 1.0"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		cmd, err := parseVersion("orders", "1.0.0", body)
		if err != nil {
			rejected(t, body, err)
			return
		}
		if err := state.ValidateDeclareVersion(cmd); err != nil {
			t.Fatalf("body %q accepted but the command is invalid: %v", body, err)
		}
	})
}

func FuzzDecodeContainerStatus(f *testing.F) {
	for _, s := range []string{
		`{"state":"running","endpoint":"127.0.0.1:21001","pid":42,"started_at":"2026-01-02T03:04:05Z",
		  "services":[{"service":"orders","version":"1.0.0","state":"serving","inflight":3}],"restarts":1,"message":"ok"}`,
		`{"state":"stopped"}`,
		`{"state":"sleeping"}`,
		`{"state":"running","services":[{"state":"serving","inflight":-1}]}`,
		`{"state":"running","started_at":"yesterday"}`,
		`{"state":"running","pid":"42"}`,
		`{"state":"running","updated_at":"2026-01-02T03:04:05Z"}`,
		`{}`,
		`[`,
	} {
		f.Add([]byte(s))
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := parseStatus(body, now)
		if err != nil {
			rejected(t, body, err)
			return
		}
		if err := state.ValidateStatus(&st); err != nil {
			t.Fatalf("body %q accepted but the status is invalid: %v", body, err)
		}
		if !st.UpdatedAt.Equal(now) {
			t.Fatalf("body %q set updated_at to %s", body, st.UpdatedAt)
		}
	})
}

// fuzzEnv is a Server over a seeded fake store, without a listener.
func fuzzEnv(f *testing.F) *Server {
	fs := newFakeStore()
	seed(f, fs)
	s, err := New(Config{Store: fs, ManagementToken: mgmtSecret})
	if err != nil {
		f.Fatal(err)
	}
	return s
}
