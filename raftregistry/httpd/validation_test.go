package httpd

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/raftregistry/state"
)

const nameRule = "is not a valid name: use 1 to 63 lowercase letters, digits and dashes, starting with a letter or digit"

// TestValidation sends bad input to every kind of write and read and checks
// the status and the exact message. Rows marked early must be refused before
// anything is proposed to Raft.
func TestValidation(t *testing.T) {
	const good = `{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"}}`
	for _, tc := range []struct {
		name, method, path, body string
		code                     int
		msg                      string
		early                    bool
	}{
		{"bad service name", "PUT", "/v1/services/Orders/versions/1.0.0", `{"clients":">= 1.0"}`, 400,
			`service: "Orders" ` + nameRule, true},
		{"bad version", "PUT", "/v1/services/orders/versions/one", `{"clients":">= 1.0"}`, 400,
			`version: "one" is not a valid version: write a semantic version such as 1.4.2 (malformed version: one)`, true},
		{"bad version on retire", "DELETE", "/v1/services/orders/versions/1..0", "", 400,
			`version: "1..0" is not a valid version: write a semantic version such as 1.4.2 (malformed version: 1..0)`, true},
		{"bad range", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":">= banana"}`, 400,
			`clients: ">= banana" is not a valid version range: write comma-separated constraints such as ">= 1.0, < 2.0" or "~> 1.4" (malformed constraint: >= banana)`, true},
		{"empty range", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":""}`, 400,
			`clients: must not be empty`, true},
		{"v prefix", "PUT", "/v1/services/orders/versions/v1.0", `{"clients":">= 1.0"}`, 400,
			`version: "v1.0" is not canonical; write "1.0.0"`, true},
		{"two-number version", "PUT", "/v1/services/orders/versions/1.0", `{"clients":">= 1.0"}`, 400,
			`version: "1.0" is not canonical; write "1.0.0"`, true},
		{"build metadata", "PUT", "/v1/services/orders/versions/1.0.0+b1", `{"clients":">= 1.0"}`, 400,
			`version: "1.0.0+b1" is not canonical; write "1.0.0"`, true},
		{"four numbers", "PUT", "/v1/services/orders/versions/1.2.3.4", `{"clients":">= 1.0"}`, 400,
			`version: "1.2.3.4" is not canonical: write MAJOR.MINOR.PATCH with an optional pre-release of letters, digits, dashes and dots, such as 1.4.2 or 2.0.0-rc.1`, true},
		{"unsatisfiable range", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":">= 2.0, < 1.0"}`, 400,
			`clients: ">= 2.0, < 1.0" admits no version`, true},
		{"contradicting equals", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":"= 1.0, = 2.0"}`, 400,
			`clients: "= 1.0, = 2.0" admits no version`, true},
		{"non-canonical version in container", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0"}],"config":{"command":"/bin/x"}}`, 400,
			`services[0].version: "1.0" is not canonical; write "1.0.0"`, true},
		{"unknown JSON field", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":">= 1.0","colour":"red"}`, 400,
			`unknown field "colour" in request body`, true},
		{"wrong type", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":1}`, 400,
			`wrong type for field "clients": expected a string, got number`, true},
		{"wrong nested type", "PUT", "/v1/containers/c9", `{"node":"n1","config":{"args":"--x"}}`, 400,
			`wrong type for field "config.args": expected an array, got string`, true},
		{"not an object", "PUT", "/v1/services/orders/versions/3.0.0", `["x"]`, 400,
			`request body must be a JSON object, got array`, true},
		{"broken JSON", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":`, 400,
			`request body is not valid JSON: unexpected end of input`, true},
		{"bad JSON syntax", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients" ">= 1"}`, 400,
			`request body is not valid JSON: invalid character '"' after object key (at byte 12)`, true},
		{"two values", "PUT", "/v1/services/orders/versions/3.0.0", `{"clients":">= 1"} {}`, 400,
			`request body holds more than one JSON value`, true},
		{"empty body", "PUT", "/v1/services/orders/versions/3.0.0", ``, 400,
			`request body is empty: expected a JSON object`, true},
		{"too large body", "PUT", "/v1/containers/c9", `{"node":"` + strings.Repeat("x", maxBody) + `"}`, 413,
			`request body is larger than 1 MiB`, true},
		{"bad container id", "PUT", "/v1/containers/Bad_Id", good, 400,
			`id: "Bad_Id" ` + nameRule, true},
		{"bad duration", "PUT", "/v1/containers/c9", `{"node":"n1","drain_timeout":"soon"}`, 400,
			`invalid duration "soon" for field "drain_timeout": use a duration such as "30s"`, true},
		{"bad nested duration", "PUT", "/v1/containers/c9", `{"node":"n1","health":{"interval":"1s","timeout":"x"}}`, 400,
			`invalid duration "x" for field "health.timeout": use a duration such as "30s"`, true},
		{"no services", "PUT", "/v1/containers/c9", `{"node":"n1","config":{"command":"/bin/x"}}`, 400,
			`services: must name at least one service version`, true},
		{"no command", "PUT", "/v1/containers/c9", `{"node":"n1","services":[{"service":"orders","version":"1.0.0"}]}`, 400,
			`config.command: must not be empty`, true},
		{"bad service version in container", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0.0"},{"service":"payments","version":"x"}],"config":{"command":"/bin/x"}}`, 400,
			`services[1].version: "x" is not a valid version: write a semantic version such as 1.4.2 (malformed version: x)`, true},
		{"duplicate service in container", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0.0"},{"service":"orders","version":"2.0.0"}],"config":{"command":"/bin/x"}}`, 400,
			`services[1].service: service "orders" is already held by services[0]: a container holds at most one version per service`, true},
		{"negative drain timeout", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"},"drain_timeout":"-1s"}`, 400,
			`drain_timeout: must be between 0 and 24h0m0s, got -1s`, true},
		{"too many restart attempts", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"},"restart":{"attempts":1001}}`, 400,
			`restart.attempts: must be between 0 and 1000 (0: the agent's default), got 1001`, true},
		{"negative restart interval", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"},"restart":{"interval":"-1m"}}`, 400,
			`restart.interval: must be between 0 and 24h (0: the agent's default), got -1m0s`, true},
		{"restart max_delay below delay", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"},"restart":{"delay":"10s","max_delay":"5s"}}`, 400,
			`restart.max_delay: must not be shorter than restart.delay (10s), got 5s`, true},
		{"bad cas", "PUT", "/v1/containers/c9?cas=latest", good, 400,
			`cas: "latest" is not a modify index (a non-negative integer; 0 means create only)`, true},
		{"undeclared version", "PUT", "/v1/containers/c9",
			`{"node":"n1","services":[{"service":"orders","version":"1.0.0"},{"service":"payments","version":"9.9.9"}],"config":{"command":"/bin/x"}}`, 400,
			`services[1].version: version 9.9.9 of service "payments" is not declared`, false},
		{"unknown node", "PUT", "/v1/containers/c9",
			`{"node":"n9","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"}}`, 400,
			`node: node "n9" is not registered (nodes register when their agent starts)`, false},
		{"cas conflict", "PUT", "/v1/containers/c1?cas=999", good, 409,
			`container "c1" is at modify index CAS, not 999: conflict`, false},
		{"create only on existing", "PUT", "/v1/containers/c1?cas=0", good, 409,
			`container "c1" is at modify index CAS, not 0: conflict`, false},
		{"different body without cas", "PUT", "/v1/containers/c1", good, 409,
			`container "c1" exists with a different body; containers are not changed in place: declare a new one, or write with ?cas=CAS: conflict`, false},
		{"bad status state", "PUT", "/v1/containers/c1/status", `{"state":"sleeping"}`, 400,
			`state: "sleeping" is not one of starting, running, draining, stopped, failed`, true},
		{"negative inflight", "PUT", "/v1/containers/c1/status",
			`{"state":"running","services":[{"service":"orders","version":"1.0.0","state":"serving","inflight":-1}]}`, 400,
			`services[0].inflight: must not be negative`, true},
		{"status of unknown container", "PUT", "/v1/containers/c9/status", `{"state":"running"}`, 404,
			`container "c9": not found`, false},
		{"node without gateway", "PUT", "/v1/nodes/n3", `{"address":"10.0.0.3"}`, 400,
			`gateway: must not be empty`, true},
		{"bad node id", "PUT", "/v1/nodes/N3", `{"gateway":"x:1"}`, 400,
			`id: "N3" ` + nameRule, true},
		{"unknown node heartbeat", "PUT", "/v1/nodes/n9/heartbeat", "", 404, `not found`, false},
		{"purge unknown node", "DELETE", "/v1/nodes/n9", "", 404, `node "n9": not found`, false},
		{"purge ready node", "DELETE", "/v1/nodes/n1", "", 409,
			`node "n1" is ready: its agent is alive, and purging it would stop its 1 container(s) under their calls; ` +
				`a purge is for a node that is down (stop its agent first, or delete its containers so that they drain), ` +
				`or pass ?force=true to purge it anyway: conflict`, false},
		{"bad force", "DELETE", "/v1/nodes/n1?force=yes", "", 400, `force: "yes" is not true or false (a bare ?force is true)`, true},
		{"bad token role", "POST", "/v1/acl/tokens", `{"role":"root"}`, 400,
			`role: "root" is not one of management, operator, agent, read`, true},
		{"agent token without node", "POST", "/v1/acl/tokens", `{"role":"agent"}`, 400,
			`node: must not be empty`, true},
		{"node on a read token", "POST", "/v1/acl/tokens", `{"role":"read","node":"n1"}`, 400,
			`node: is only allowed with the agent role`, true},
		{"delete unknown token", "DELETE", "/v1/acl/tokens/nope", "", 404, `token "nope": not found`, false},
		{"join without id", "POST", "/v1/cluster/join", `{"raft_addr":"127.0.0.1:1"}`, 400, `id: must not be empty`, true},
		{"join without raft address", "POST", "/v1/cluster/join", `{"id":"s2"}`, 400, `raft_addr: must not be empty`, true},
		{"bad index", "GET", "/v1/nodes?index=abc", "", 400, `index: "abc" is not a non-negative integer`, true},
		{"negative index", "GET", "/v1/nodes?index=-1", "", 400, `index: "-1" is not a non-negative integer`, true},
		{"bad wait", "GET", "/v1/nodes?index=1&wait=forever", "", 400,
			`wait: "forever" is not a duration such as "30s" or "5m"`, true},
		{"negative wait", "GET", "/v1/nodes?index=1&wait=-1s", "", 400, `wait: must not be negative, got -1s`, true},
		{"bad stale", "GET", "/v1/nodes?stale=maybe", "", 400, `stale: "maybe" is not true or false (a bare ?stale is true)`, true},
		{"stale and consistent", "GET", "/v1/nodes?stale&consistent", "", 400,
			`stale: cannot be combined with consistent: choose one`, true},
		{"bad node filter", "GET", "/v1/containers?node=N1", "", 400, `node: "N1" ` + nameRule, true},
		{"unknown service", "GET", "/v1/services/payments", "", 404, `service "payments" has no version declared: not found`, false},
		{"unknown container", "GET", "/v1/containers/c9", "", 404, `container "c9": not found`, false},
		{"retire unknown version", "DELETE", "/v1/services/orders/versions/9.0.0", "", 404,
			`version 9.0.0 of service "orders": not found`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			_, c1, _ := e.fake.st.Container("c1")
			before := e.fake.applies()
			r := e.do(tc.method, tc.path, mgmtSecret, tc.body)
			if r.code != tc.code {
				t.Fatalf("code = %d %s, want %d", r.code, r.body, tc.code)
			}
			want := strings.ReplaceAll(tc.msg, "CAS", strconv.FormatUint(c1.ModifyIndex, 10))
			if got := r.errorMessage(t); got != want {
				t.Errorf("error = %q\nwant    %q", got, want)
			}
			if tc.early && e.fake.applies() != before {
				t.Errorf("bad input reached Raft: %d command(s) proposed", e.fake.applies()-before)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
		})
	}
}

// TestWriteIsOneCommand checks that a good write proposes exactly one
// command.
func TestWriteIsOneCommand(t *testing.T) {
	e := newEnv(t)
	r := e.do("PUT", "/v1/containers/c9", opSecret,
		`{"node":"n2","services":[{"service":"orders","version":"2.0.0"}],"config":{"command":"/bin/x"}}`)
	if r.code != http.StatusOK {
		t.Fatalf("put = %d %s", r.code, r.body)
	}
	if n := e.fake.applies(); n != 1 {
		t.Errorf("%d commands proposed, want 1", n)
	}
}

// TestContainerRulesOfState: a container on a retired version is a 400 that
// names the field and the way back; a change of what runs is a 409 even with
// the right ?cas; a change of drain_timeout is written in place.
func TestContainerRulesOfState(t *testing.T) {
	e := newEnv(t)
	e.fake.applyNow(t, &state.RetireVersion{Service: "orders", Version: "2.0.0", Now: time.Now()})
	e.fake.applyNow(t, &state.MarkRetired{Versions: e.fake.st.DueRetirements(time.Now()), Now: time.Now()})
	r := e.do("PUT", "/v1/containers/c9", opSecret,
		`{"node":"n1","services":[{"service":"orders","version":"2.0.0"}],"config":{"command":"/bin/x"}}`)
	if got := r.errorMessage(t); r.code != http.StatusBadRequest ||
		got != "services[0].version: orders 2.0.0 is retired; declare it again to roll back" {
		t.Errorf("container on a retired version: %d %q", r.code, got)
	}

	_, c1, _ := e.fake.st.Container("c1")
	cas := strconv.FormatUint(c1.ModifyIndex, 10)
	r = e.do("PUT", "/v1/containers/c1?cas="+cas, mgmtSecret,
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/orders","args":["--new"],"env":{"SECRET":"`+envSecret+`"}}}`)
	if got := r.errorMessage(t); r.code != http.StatusConflict || !strings.HasPrefix(got, `container "c1": config.args differs`) ||
		!strings.Contains(got, "declare a new container") {
		t.Errorf("in-place change of what runs: %d %q", r.code, got)
	}
	r = e.do("PUT", "/v1/containers/c1?cas="+cas, mgmtSecret,
		`{"node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/orders","env":{"SECRET":"`+envSecret+`"}},"drain_timeout":"1m"}`)
	if r.code != http.StatusOK {
		t.Errorf("drain_timeout in place: %d %s", r.code, r.body)
	}
}
