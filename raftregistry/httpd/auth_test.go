package httpd

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/coexist-dev/coexist/api"
	"github.com/hashicorp/go-hclog"
)

// Tokens by the name the auth table uses.
var secrets = map[string]string{
	"management": mgmtSecret,
	"operator":   opSecret,
	"read":       readSecret,
	"agent-n1":   agent1Secret,
	"agent-n2":   agent2Secret,
	"none":       "",
	"unknown":    "no-such-token-value",
}

func TestAuth(t *testing.T) {
	const newContainer = `{"node":"n2","services":[{"service":"orders","version":"2.0.0"}],"config":{"command":"/bin/x"}}`
	const running = `{"state":"running"}`
	type want map[string]int // token name -> status
	for _, tc := range []struct {
		method, path, body string
		want               want
	}{
		{"GET", "/v1/services", "", want{"management": 200, "operator": 200, "read": 200, "agent-n1": 200, "none": 401, "unknown": 401}},
		{"GET", "/v1/containers/c1", "", want{"management": 200, "operator": 200, "read": 200, "agent-n2": 200, "none": 401}},
		{"GET", "/v1/route?service=orders&client_version=1.0.0", "", want{"read": 404, "agent-n1": 404, "operator": 404, "none": 401}},
		{"PUT", "/v1/services/orders/versions/3.0.0", `{"clients":">= 3.0"}`, want{"management": 200, "operator": 200, "read": 403, "agent-n1": 403, "none": 401, "unknown": 401}},
		{"DELETE", "/v1/services/orders/versions/2.0.0", "", want{"management": 200, "operator": 200, "read": 403, "agent-n1": 403}},
		{"PUT", "/v1/containers/c9", newContainer, want{"management": 200, "operator": 200, "read": 403, "agent-n2": 403, "none": 401}},
		{"DELETE", "/v1/containers/c1", "", want{"management": 200, "operator": 200, "read": 403, "agent-n1": 403}},
		{"PUT", "/v1/containers/c1/status", running, want{"management": 200, "agent-n1": 200, "agent-n2": 403, "operator": 403, "read": 403, "none": 401}},
		{"PUT", "/v1/nodes/n1", `{"gateway":"10.0.0.1:8081"}`, want{"management": 200, "agent-n1": 200, "agent-n2": 403, "operator": 403, "read": 403}},
		{"PUT", "/v1/nodes/n1/heartbeat", "", want{"management": 200, "agent-n1": 200, "agent-n2": 403, "operator": 403, "read": 403, "none": 401}},
		{"DELETE", "/v1/nodes/n2?force=true", "", want{"management": 200, "operator": 200, "agent-n2": 403, "read": 403}},
		{"POST", "/v1/acl/tokens", `{"role":"read"}`, want{"management": 200, "operator": 403, "agent-n1": 403, "read": 403, "none": 401}},
		{"GET", "/v1/acl/tokens", "", want{"management": 200, "operator": 403, "read": 403}},
		{"DELETE", "/v1/acl/tokens/read-accessor", "", want{"management": 200, "operator": 403}},
		{"GET", "/v1/acl/token/self", "", want{"management": 200, "operator": 200, "read": 200, "agent-n1": 200, "none": 401, "unknown": 401}},
		{"GET", "/v1/snapshot", "", want{"management": 200, "operator": 403, "read": 403}},
		{"PUT", "/v1/snapshot", `{}`, want{"operator": 403, "read": 403, "none": 401}},
		{"POST", "/v1/cluster/join", `{"id":"s2","raft_addr":"127.0.0.1:1"}`, want{"management": 200, "operator": 403, "read": 403}},
		{"DELETE", "/v1/cluster/peers/s2", "", want{"management": 200, "operator": 403}},
		{"GET", "/v1/metrics", "", want{"read": 200, "agent-n1": 200, "none": 401, "unknown": 401}},
		{"GET", "/v1/status/leader", "", want{"none": 200, "unknown": 200}},
		{"GET", "/v1/status/peers", "", want{"none": 200}},
	} {
		for who, code := range tc.want {
			t.Run(tc.method+" "+tc.path+" as "+who, func(t *testing.T) {
				e := newEnv(t)
				r := e.do(tc.method, tc.path, secrets[who], tc.body)
				if r.code != code {
					t.Fatalf("code = %d %s, want %d", r.code, r.body, code)
				}
				if code == 401 || code == 403 {
					msg := r.errorMessage(t)
					if s := secrets[who]; s != "" && strings.Contains(msg, s) {
						t.Errorf("message echoes the token: %q", msg)
					}
					if code == 403 && !strings.Contains(msg, "needs") {
						t.Errorf("403 does not name the role needed: %q", msg)
					}
				}
			})
		}
	}
}

func TestAuthMessages(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, method, path, auth string
		code                     int
		msg                      string
	}{
		{"missing", "GET", "/v1/nodes", "", 401, "missing token: send Authorization: Bearer <token>"},
		{"not bearer", "GET", "/v1/nodes", "Basic dXNlcjpwYXNz", 401, "malformed Authorization header: send Authorization: Bearer <token>"},
		{"empty bearer", "GET", "/v1/nodes", "Bearer ", 401, "malformed Authorization header: send Authorization: Bearer <token>"},
		{"unknown", "GET", "/v1/nodes", "Bearer s3cr3t-guess", 401, "unknown token: it does not exist or was revoked"},
		{"lowercase scheme", "GET", "/v1/nodes", "bearer " + readSecret, 200, ""},
		{"read writes", "PUT", "/v1/services/orders/versions/3.0.0", "Bearer " + readSecret, 403,
			"permission denied: PUT /v1/services/{service}/versions/{version} needs an operator or management token; this token's role is read"},
		{"operator manages", "POST", "/v1/acl/tokens", "Bearer " + opSecret, 403,
			"permission denied: POST /v1/acl/tokens needs a management token; this token's role is operator"},
		{"agent on another node", "PUT", "/v1/nodes/n1", "Bearer " + agent2Secret, 403,
			`permission denied: PUT /v1/nodes/{id} needs the agent token of node "n1" or a management token; this is the agent token of node "n2"`},
		{"agent reports another node's container", "PUT", "/v1/containers/c1/status", "Bearer " + agent2Secret, 403,
			`permission denied: PUT /v1/containers/{id}/status needs the agent token of node "n1" or a management token; this is the agent token of node "n2"`},
		{"operator reports status", "PUT", "/v1/containers/c1/status", "Bearer " + opSecret, 403,
			"permission denied: PUT /v1/containers/{id}/status needs the agent token of the container's node or a management token; this token's role is operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.auth != "" {
				hdr.Set("Authorization", tc.auth)
			}
			body := ""
			switch {
			case strings.HasSuffix(tc.path, "/status"):
				body = `{"state":"running"}`
			case tc.method == "PUT" && strings.HasPrefix(tc.path, "/v1/nodes"):
				body = `{"gateway":"x:1"}`
			case tc.method == "PUT":
				body = `{"clients":">= 3.0"}`
			case tc.method == "POST":
				body = `{"role":"read"}`
			}
			r := doURL(t, e.hs.Client(), tc.method, e.hs.URL+tc.path, "", body, hdr)
			if r.code != tc.code {
				t.Fatalf("code = %d %s, want %d", r.code, r.body, tc.code)
			}
			if tc.msg != "" {
				if got := r.errorMessage(t); got != tc.msg {
					t.Errorf("error = %q\nwant    %q", got, tc.msg)
				}
			}
		})
	}
}

// TestTokensNeverLogged runs requests with every token at the most verbose
// log level and checks that no secret reaches the log.
func TestTokensNeverLogged(t *testing.T) {
	var buf bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: &buf})
	e := newEnv(t, func(c *Config) { c.Logger = logger })
	for _, s := range secrets {
		e.do("GET", "/v1/nodes", s, "")
		e.do("PUT", "/v1/containers/c1/status", s, `{"state":"running"}`)
	}
	created := e.do("POST", "/v1/acl/tokens", mgmtSecret, `{"role":"read"}`)
	var tk api.Token
	created.decode(t, &tk)
	if buf.Len() == 0 {
		t.Fatal("nothing logged: the test proves nothing")
	}
	for _, s := range append([]string{tk.SecretID}, mgmtSecret, opSecret, readSecret, agent1Secret, agent2Secret, secrets["unknown"]) {
		if strings.Contains(buf.String(), s) {
			t.Errorf("log holds a secret")
		}
	}
}

func TestEnvRedaction(t *testing.T) {
	e := newEnv(t)
	for who, shown := range map[string]bool{
		"management": true, "operator": true, "agent-n1": true, "agent-n2": false, "read": false,
	} {
		t.Run(who, func(t *testing.T) {
			var one api.Container
			r := e.do("GET", "/v1/containers/c1", secrets[who], "")
			r.decode(t, &one)
			var list []api.Container
			e.do("GET", "/v1/containers", secrets[who], "").decode(t, &list)
			want := "<redacted>"
			if shown {
				want = envSecret
			}
			if got := one.Config.Env["SECRET"]; got != want {
				t.Errorf("GET one: env SECRET = %q, want %q", got, want)
			}
			if len(list) != 1 || list[0].Config.Env["SECRET"] != want {
				t.Errorf("GET list: env = %+v, want %q", list, want)
			}
			if !shown && strings.Contains(r.body, envSecret) {
				t.Errorf("answer holds the env value: %s", r.body)
			}
		})
	}
}

// TestMessageRedaction: a container's status message holds its last output
// lines; only operator and management see it, not a read token (what every
// SDK client holds) nor an agent token, not even its own node's.
func TestMessageRedaction(t *testing.T) {
	e := newEnv(t)
	const outputSecret = "COEXIST_MANAGEMENT_TOKEN=leaked-0123456789abcdef"
	msg := "exited with code 1\nlast output:\n" + outputSecret
	if r := e.do("PUT", "/v1/containers/c1/status", agent1Secret, `{"state":"failed","message":"exited with code 1\nlast output:\n`+outputSecret+`"}`); r.code != 200 {
		t.Fatalf("report: %d %s", r.code, r.body)
	}
	for who, shown := range map[string]bool{
		"management": true, "operator": true, "agent-n1": false, "agent-n2": false, "read": false,
	} {
		t.Run(who, func(t *testing.T) {
			want := "<redacted>"
			if shown {
				want = msg
			}
			var one api.Container
			r1 := e.do("GET", "/v1/containers/c1", secrets[who], "")
			r1.decode(t, &one)
			if one.Status == nil || one.Status.Message != want {
				t.Errorf("GET one: status %+v, want message %q", one.Status, want)
			}
			for _, path := range []string{"/v1/containers", "/v1/containers?node=n1"} {
				var list []api.Container
				r := e.do("GET", path, secrets[who], "")
				r.decode(t, &list)
				if len(list) != 1 || list[0].Status == nil || list[0].Status.Message != want {
					t.Errorf("GET %s: %+v, want message %q", path, list, want)
				}
				if !shown && strings.Contains(r.body, outputSecret) {
					t.Errorf("GET %s holds the output: %s", path, r.body)
				}
			}
			if !shown && strings.Contains(r1.body, outputSecret) {
				t.Errorf("answer holds the output: %s", r1.body)
			}
		})
	}
	// The agent's own write answers with the record as it may see it.
	r := e.do("PUT", "/v1/containers/c1/status", agent1Secret, `{"state":"failed","message":"again `+outputSecret+`"}`)
	if r.code != 200 || strings.Contains(r.body, outputSecret) {
		t.Errorf("the status write answers %d %s", r.code, r.body)
	}
}
