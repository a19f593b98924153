package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// env returns a getenv over m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func newServer(t *testing.T, args []string, vars map[string]string) *httptest.Server {
	t.Helper()
	if vars == nil {
		vars = map[string]string{}
	}
	vars["PORT"] = "1" // parseConfig wants one; httptest picks the real port
	c, err := parseConfig(args, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(c))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHelloByMajorVersion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		args     []string
		vars     map[string]string
		version  string
		wantType string
		check    func(t *testing.T, body string)
	}{
		{
			name: "default is 1.0.0, plain text", version: "1.0.0", wantType: "text/plain",
			check: func(t *testing.T, body string) {
				if body != "hello, ann (greeter 1.0.0)\n" {
					t.Fatalf("body = %q", body)
				}
			},
		},
		{
			name: "env GREETER_VERSION", vars: map[string]string{"GREETER_VERSION": "1.4.2"}, version: "1.4.2", wantType: "text/plain",
			check: func(t *testing.T, body string) {
				if body != "hello, ann (greeter 1.4.2)\n" {
					t.Fatalf("body = %q", body)
				}
			},
		},
		{
			name: "flag wins over env, major 2 is JSON", args: []string{"--version", "2.1.0"},
			vars: map[string]string{"GREETER_VERSION": "1.4.2"}, version: "2.1.0", wantType: "application/json",
			check: func(t *testing.T, body string) {
				var got map[string]string
				if err := json.Unmarshal([]byte(body), &got); err != nil {
					t.Fatalf("body %q: %v", body, err)
				}
				want := map[string]string{"greeting": "hello", "name": "ann", "version": "2.1.0"}
				if len(got) != len(want) || got["greeting"] != want["greeting"] || got["name"] != want["name"] || got["version"] != want["version"] {
					t.Fatalf("body = %v, want %v", got, want)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, tc.args, tc.vars)
			resp, body := get(t, srv.URL+"/greeter/hello?name=ann")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if v := resp.Header.Get("Greeter-Version"); v != tc.version {
				t.Fatalf("Greeter-Version = %q, want %q", v, tc.version)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Fatalf("Content-Type = %q, want %s", ct, tc.wantType)
			}
			tc.check(t, body)
		})
	}
}

func TestDelay(t *testing.T) {
	t.Parallel()
	srv := newServer(t, nil, nil)
	began := time.Now()
	resp, body := get(t, srv.URL+"/greeter/hello?name=bo&delay=200ms")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, "hello, bo") {
		t.Fatalf("status %d, body %q", resp.StatusCode, body)
	}
	if d := time.Since(began); d < 200*time.Millisecond {
		t.Fatalf("answered after %s, before the delay", d)
	}
	for _, bad := range []string{"soon", "-1s", "1h"} {
		if resp, _ := get(t, srv.URL+"/greeter/hello?delay="+bad); resp.StatusCode != 400 {
			t.Errorf("delay=%s: status %d, want 400", bad, resp.StatusCode)
		}
	}
	// A caller that gives up does not keep the handler sleeping.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/greeter/hello?delay=1m", nil)
	began = time.Now()
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("call with a 1m delay did not time out")
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Fatalf("cancelled call took %s", d)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	resp, body := get(t, newServer(t, nil, nil).URL+"/healthz")
	if resp.StatusCode != 200 || body != "ok" || resp.Header.Get("Greeter-Version") != "1.0.0" {
		t.Fatalf("healthz = %d %q", resp.StatusCode, body)
	}
	resp, _ = get(t, newServer(t, nil, map[string]string{"GREETER_FAIL_HEALTH": "1"}).URL+"/healthz")
	if resp.StatusCode != 500 || resp.Header.Get("Greeter-Version") != "1.0.0" {
		t.Fatalf("healthz with GREETER_FAIL_HEALTH=1 = %d, want 500 with the version header", resp.StatusCode)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		args []string
		vars map[string]string
		want string
	}{
		"no PORT":       {vars: map[string]string{}, want: "PORT is not set"},
		"bad PORT":      {vars: map[string]string{"PORT": "http"}, want: "not a port"},
		"bad version":   {args: []string{"--version", "two"}, vars: map[string]string{"PORT": "1"}, want: "MAJOR.MINOR.PATCH"},
		"bad crash":     {vars: map[string]string{"PORT": "1", "GREETER_CRASH_AFTER": "later"}, want: "GREETER_CRASH_AFTER"},
		"unknown flags": {args: []string{"--nope"}, vars: map[string]string{"PORT": "1"}, want: "nope"},
	} {
		_, err := parseConfig(tc.args, env(tc.vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	c, err := parseConfig([]string{"--version=v3.0.1"}, env(map[string]string{"PORT": "8080", "GREETER_CRASH_AFTER": "2s"}))
	if err != nil || c.Version != "3.0.1" || c.Major != 3 || c.Addr != "127.0.0.1:8080" || c.CrashAfter != 2*time.Second {
		t.Fatalf("config = %+v, %v", c, err)
	}
}
