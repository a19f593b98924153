package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// wantStatus checks that err is a registry answer with the given code whose
// message holds each of want.
func wantStatus(t *testing.T, what string, err error, code int, want ...string) {
	t.Helper()
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("%s: err = %v, want %d", what, err, code)
	}
	for _, w := range want {
		if !strings.Contains(se.Body, w) {
			t.Errorf("%s: %q does not say %q", what, se.Body, w)
		}
	}
}

// TestVersionRulesOnRealProcesses: a real server refuses non-canonical
// versions and ranges that admit no version, and a real agent's gateway
// refuses a caller whose version is not canonical.
func TestVersionRulesOnRealProcesses(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	a := f.startAgent("n1")
	ctx := context.Background()
	svcs := f.api.Services()

	_, _, err := svcs.Declare(ctx, "greeter", "v1.0", api.VersionRequest{Clients: ">= 1.0"}, nil)
	wantStatus(t, "declare v1.0", err, http.StatusBadRequest, `version: "v1.0" is not canonical; write "1.0.0"`)
	_, _, err = svcs.Declare(ctx, "greeter", "1.0.0+b1", api.VersionRequest{Clients: ">= 1.0"}, nil)
	wantStatus(t, "declare 1.0.0+b1", err, http.StatusBadRequest, `version: "1.0.0+b1" is not canonical; write "1.0.0"`)
	_, _, err = svcs.Declare(ctx, "greeter", "1.0.0", api.VersionRequest{Clients: ">= 2.0, < 1.0"}, nil)
	wantStatus(t, "declare >= 2.0, < 1.0", err, http.StatusBadRequest, `clients: ">= 2.0, < 1.0" admits no version`)
	if s, _, err := svcs.List(ctx, nil); err != nil || len(s) != 0 {
		t.Fatalf("refused declarations left services: %v %v", s, err)
	}

	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	f.greeter("g1", "n1", "1.0.0", nil)
	f.waitState("g1", api.ContainerRunning)
	for _, tc := range []struct{ version, canon string }{{"1.2", "1.2.0"}, {"v1.2.0", "1.2.0"}, {"1.2.0+b1", "1.2.0"}} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.gateway+"/greeter/hello", nil)
		req.Header.Set(api.HeaderClient, "web")
		req.Header.Set(api.HeaderClientVersion, tc.version)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := api.HeaderClientVersion + `: \"` + tc.version + `\" is not canonical; write \"` + tc.canon + `\"`
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), want) {
			t.Errorf("gateway, client version %q: %d %s; want 400 saying %s", tc.version, resp.StatusCode, body, want)
		}
	}
	var mu sync.Mutex
	c := newCaller(a.gateway, "web", "1.2.0", map[string]string{"1.0.0": ">= 1.0, < 2.0"}, &mu)
	if served, err := c.call(ctx, ""); err != nil || !strings.HasPrefix(served, "greeter@1.0.0 ") {
		t.Fatalf("canonical client version: served %q, %v", served, err)
	}
}

// TestPurgeOnRealProcesses retires and purges versions and a service on a
// real server with a real agent: purge is refused (409, saying why) while a
// version is not retired or a container holds it, and then removes it.
func TestPurgeOnRealProcesses(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	f.startAgent("n1")
	ctx := context.Background()
	svcs := f.api.Services()

	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	f.declare("greeter", "2.0.0", ">= 2.0, < 3.0")
	f.greeter("g1", "n1", "1.0.0", nil)
	f.waitState("g1", api.ContainerRunning)

	_, _, err := svcs.PurgeVersion(ctx, "greeter", "1.0.0", nil)
	wantStatus(t, "purge an active version", err, http.StatusConflict,
		`version 1.0.0 of service "greeter" is active: only a retired version can be purged`)
	f.retire("greeter", "1.0.0")
	f.waitVersion("greeter", "1.0.0", api.VersionRetired)
	_, _, err = svcs.PurgeVersion(ctx, "greeter", "1.0.0", nil)
	wantStatus(t, "purge a version a container holds", err, http.StatusConflict,
		`version 1.0.0 of service "greeter" is held by container g1: delete it first`)
	_, _, err = svcs.Purge(ctx, "greeter", nil)
	wantStatus(t, "purge the service", err, http.StatusConflict,
		`service "greeter" cannot be purged: version 1.0.0 is held by container g1`, "version 2.0.0 is active")

	if _, _, err := f.api.Containers().Delete(ctx, "g1", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "g1 to leave the table", func() bool {
		_, _, err := f.api.Containers().Info(ctx, "g1", nil)
		return api.IsNotFound(err)
	})
	v, _, err := svcs.PurgeVersion(ctx, "greeter", "1.0.0", nil)
	if err != nil || v.Version != "1.0.0" || v.State != api.VersionRetired {
		t.Fatalf("purge 1.0.0: %+v, %v", v, err)
	}
	s, _, err := svcs.Info(ctx, "greeter", nil)
	if err != nil || len(s.Versions) != 1 || s.Versions[0].Version != "2.0.0" {
		t.Fatalf("greeter after purge: %+v, %v", s, err)
	}

	f.retire("greeter", "2.0.0")
	f.waitVersion("greeter", "2.0.0", api.VersionRetired)
	s, _, err = svcs.Purge(ctx, "greeter", nil)
	if err != nil || s.Name != "greeter" || len(s.Versions) != 1 {
		t.Fatalf("purge greeter: %+v, %v", s, err)
	}
	if _, _, err := svcs.Info(ctx, "greeter", nil); !api.IsNotFound(err) {
		t.Fatalf("greeter after purge: %v, want 404", err)
	}
	// Declared again, it starts afresh.
	f.declare("greeter", "1.0.0", ">= 1.0, < 2.0")
	f.waitVersion("greeter", "1.0.0", api.VersionActive)
}
