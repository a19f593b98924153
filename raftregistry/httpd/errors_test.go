package httpd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/prometheus/client_golang/prometheus"
)

// The real store satisfies the interface declared here.
var _ Store = (*raftregistry.Store)(nil)

func TestStatusOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		msg  string
	}{
		{&state.FieldError{Field: "services[1].version", Reason: "is not declared"}, 400, "services[1].version: is not declared"},
		{fmt.Errorf("apply: %w", &state.FieldError{Field: "node", Reason: "bad"}), 400, "node: bad"},
		{fmt.Errorf("container %q: %w", "c1", state.ErrNotFound), 404, `container "c1": not found`},
		{raftregistry.ErrNotFound, 404, "not found"},
		{fmt.Errorf("x: %w", state.ErrConflict), 409, "x: conflict"},
		{fmt.Errorf("x: %w", state.ErrPermission), 403, "x: permission denied"},
		{raftregistry.ErrNoLeader, 503, "no leader known"},
		{fmt.Errorf("apply: %w", raftregistry.ErrNotLeader), 503, "apply: not the leader"},
		{raftregistry.ErrTimeout, 503, "timed out waiting for raft"},
		{raftregistry.ErrShutdown, 503, "store is shut down"},
		{context.DeadlineExceeded, 504, "context deadline exceeded"},
		{context.Canceled, 503, "context canceled"},
		{&http.MaxBytesError{Limit: maxBody}, 413, "request body is larger than 1 MiB"},
		{httpErrorf(401, "who"), 401, "who"},
		{errors.New("disk on fire"), 500, "disk on fire"},
	} {
		code, msg := statusOf(tc.err)
		if code != tc.code || msg != tc.msg {
			t.Errorf("statusOf(%v) = %d %q, want %d %q", tc.err, code, msg, tc.code, tc.msg)
		}
	}
}

func TestRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.Registerer = reg })
	e.do("GET", "/v1/nodes", readSecret, "")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		found = found || mf.GetName() == "coexist_http_requests_total"
	}
	if !found {
		t.Error("the given registry has no request counter")
	}
	if r := e.do("GET", "/v1/metrics", readSecret, ""); r.code != 200 {
		t.Errorf("metrics = %d", r.code)
	}
	// A second server on the same registry is an error, not a panic.
	if _, err := New(Config{Store: e.fake, Registerer: reg}); err == nil {
		t.Error("second New on one registry succeeded")
	}
	// A registerer that cannot be gathered still gets the collectors, and
	// /v1/metrics serves them from a private registry.
	wrapped := prometheus.WrapRegistererWith(prometheus.Labels{"server": "s2"}, prometheus.NewRegistry())
	e2 := newEnv(t, func(c *Config) { c.Registerer = wrapped })
	if r := e2.do("GET", "/v1/metrics", readSecret, ""); r.code != 200 {
		t.Errorf("metrics = %d", r.code)
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New without a Store succeeded")
	}
}
