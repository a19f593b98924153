package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/path"
	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/coexist-dev/coexist/api"
)

// Unit tests: they run without TF_ACC, with no registry and no CLI.

func TestSchemasAreValid(t *testing.T) {
	ctx := context.Background()
	p := New("test")()
	var presp fwprovider.SchemaResponse
	p.Schema(ctx, fwprovider.SchemaRequest{}, &presp)
	if presp.Diagnostics.HasError() {
		t.Fatalf("provider schema: %v", presp.Diagnostics)
	}
	for _, newRes := range p.Resources(ctx) {
		r := newRes()
		var meta resource.MetadataResponse
		r.Metadata(ctx, resource.MetadataRequest{ProviderTypeName: "coexist"}, &meta)
		var resp resource.SchemaResponse
		r.Schema(ctx, resource.SchemaRequest{}, &resp)
		diags := resp.Schema.ValidateImplementation(ctx)
		diags.Append(resp.Diagnostics...)
		if diags.HasError() {
			t.Errorf("%s: %v", meta.TypeName, diags)
		}
	}
	for _, newDS := range p.DataSources(ctx) {
		d := newDS()
		var meta datasource.MetadataResponse
		d.Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: "coexist"}, &meta)
		var resp datasource.SchemaResponse
		d.Schema(ctx, datasource.SchemaRequest{}, &resp)
		diags := resp.Schema.ValidateImplementation(ctx)
		diags.Append(resp.Diagnostics...)
		if diags.HasError() {
			t.Errorf("%s: %v", meta.TypeName, diags)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"greeter", ""},
		{"a", ""},
		{"0-web-1", ""},
		{strings.Repeat("a", 56), ""},
		{strings.Repeat("a", 57), "is 57 characters long; at most 56 are allowed"},
		{"", "must not be empty"},
		{"Web", "is not a valid name"},
		{"-web", "is not a valid name"},
		{"web_1", "is not a valid name"},
	} {
		got := checkName(tc.in, maxContainerN)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCheckVersionAndRange(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"1.4.2", ""}, {"2.0.0-rc.1", ""},
		{"1.0", `"1.0" is not canonical; write "1.0.0".`}, {"v1.0.0", `"v1.0.0" is not canonical; write "1.0.0".`},
		{"1.0.0+b1", `"1.0.0+b1" is not canonical; write "1.0.0".`}, {"", "The version must not be empty."},
		{"", "must not be empty"}, {"1.x", "is not a valid version"}, {strings.Repeat("1", 129), "longer than 128"},
	} {
		if got := checkVersion(tc.in); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkVersion(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{">= 1.0, < 2.0", ""}, {"~> 1.4", ""}, {"= 1.2.3", ""},
		{"", "must not be empty"}, {"  ", "must not be empty"}, {">= one", "is not a valid version range"},
		{">= 1.0 < 2.0", "is not a valid version range"},
		{">= 2.0, < 1.0", `">= 2.0, < 1.0" admits no version.`}, {"> 1.0, < 1.0", "admits no version"},
	} {
		if got := checkRange(tc.in); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkRange(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCheckDuration(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"30s", ""}, {"1m30s", ""}, {"500ms", ""}, {"24h", ""},
		{"30", "is not a valid duration"}, {"30 seconds", "is not a valid duration"}, {"1d", "is not a valid duration"},
		{"0s", "is out of range"}, {"25h", "is out of range"}, {"-1s", "is out of range"},
	} {
		if got := checkDuration(tc.in, time.Millisecond, 24*time.Hour); (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("checkDuration(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDurationSemanticEquality(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"1m", "1m0s", true}, {"60s", "1m0s", true}, {"1.5s", "1500ms", true},
		{"30s", "30s", true}, {"1m", "2m", false}, {"1m", "bogus", false},
	} {
		got, diags := NewDuration(tc.a).StringSemanticEquals(ctx, NewDuration(tc.b))
		if diags.HasError() || got != tc.want {
			t.Errorf("%q vs %q: %v %v, want %v", tc.a, tc.b, got, diags, tc.want)
		}
	}
	if NewDuration("1m").Equal(NewDuration("1m0s")) {
		t.Error("Equal must compare the written strings")
	}
	if d := DurationOf(0); !d.IsNull() {
		t.Errorf("DurationOf(0) = %v, want null", d)
	}
	if got := keepDuration(NewDuration("1m"), DurationOf(time.Minute)); got.ValueString() != "1m" {
		t.Errorf("keepDuration kept %q, want the operator's 1m", got.ValueString())
	}
	if got := keepDuration(NewDuration("1m"), DurationOf(2*time.Minute)); got.ValueString() != "2m0s" {
		t.Errorf("keepDuration = %q, want the registry's 2m0s", got.ValueString())
	}
}

func TestContainerIDs(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
	name := strings.Repeat("n", maxContainerN)
	seen := map[string]bool{}
	for range 100 {
		id := newContainerID(name)
		if !re.MatchString(id) {
			t.Fatalf("id %q is not a registry name", id)
		}
		if !strings.HasPrefix(id, name+"-") || len(id) != len(name)+1+suffixLen {
			t.Fatalf("id %q is not the name, a dash and a suffix", id)
		}
		seen[id] = true
	}
	if len(seen) < 95 {
		t.Errorf("only %d distinct ids in 100", len(seen))
	}
	for _, id := range []string{"greeter@1.4.2", "greeter/1.4.2"} {
		if s, v, ok := parseVersionID(id); !ok || s != "greeter" || v != "1.4.2" {
			t.Errorf("parseVersionID(%q) = %q %q %v", id, s, v, ok)
		}
	}
	if _, _, ok := parseVersionID("greeter"); ok {
		t.Error("parseVersionID accepted an id without a version")
	}
}

func TestExplainErrors(t *testing.T) {
	c := &Client{Address: "http://127.0.0.1:7700"}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	ac, err := api.NewClient(&api.Config{Address: "http://" + closed, Token: "x"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, dialErr := ac.Nodes().List(context.Background(), nil)
	for _, tc := range []struct {
		name string
		err  error
		want []string
	}{
		{"unreachable", dialErr, []string{"Cannot reach the coexist registry at http://127.0.0.1:7700", "COEXIST_ADDR"}},
		{"bad token", &api.StatusError{Code: 401, Body: "unknown token"}, []string{"refused the token: unknown token", "COEXIST_TOKEN"}},
		{"role", &api.StatusError{Code: 403, Body: "read tokens may not write"}, []string{"does not allow this token", "operator or management"}},
		{"no leader", &api.StatusError{Code: 503, Body: "no leader"}, []string{"has no leader", "coexist status"}},
		{"bad request", &api.StatusError{Code: 400, Body: `services[1].version: version 1.4.2 of service "orders" is not declared`},
			[]string{`refused it: services[1].version: version 1.4.2 of service "orders" is not declared`}},
		{"other", errors.New("boom"), []string{"boom"}},
	} {
		got := explain(c, tc.err)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q does not contain %q", tc.name, got, w)
			}
		}
	}
	if !isNoLeader(&api.StatusError{Code: 503}) || isNoLeader(fmt.Errorf("x")) {
		t.Error("isNoLeader")
	}
}

// Reading a container back keeps the forms the operator wrote where they
// mean the same, so that a refresh never plans a replacement.
func TestContainerFromAPIKeepsForms(t *testing.T) {
	ctx := context.Background()
	emptyArgs, _ := types.ListValue(types.StringType, []attr.Value{})
	env, _ := types.MapValue(types.StringType, map[string]attr.Value{"SECRET": types.StringValue("s3cret")})
	cfg, d := types.ObjectValue(configAttrTypes, map[string]attr.Value{
		"command": types.StringValue("/bin/greeter"), "image": types.StringNull(), "args": emptyArgs, "env": env,
	})
	if d.HasError() {
		t.Fatal(d)
	}
	health, d := types.ObjectValue(healthAttrTypes, map[string]attr.Value{
		"http": types.StringValue("/healthz"), "tcp": types.BoolValue(false),
		"interval": NewDuration("1m"), "timeout": NewDuration("1s"),
	})
	if d.HasError() {
		t.Fatal(d)
	}
	prior := containerModel{
		Name: types.StringValue("web"), Config: cfg, Health: health,
		Restart:      types.ObjectNull(restartAttrTypes),
		DrainTimeout: NewDuration("1m"),
		Timeouts:     timeouts.Value{Object: types.ObjectNull(map[string]attr.Type{"create": types.StringType, "delete": types.StringType})},
	}
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ct := &api.Container{
		ID: "web-ab12c", Node: "n1", Driver: "exec",
		Services:     []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}},
		Config:       api.DriverConfig{Command: "/bin/greeter", Env: map[string]string{"SECRET": redacted}},
		Health:       &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(time.Minute), Timeout: api.Duration(time.Second)},
		Restart:      &api.RestartPolicy{},
		DrainTimeout: api.Duration(time.Minute),
		Status:       &api.ContainerStatus{State: "running", PID: 42, Endpoint: "127.0.0.1:21000", StartedAt: &started},
	}
	var m containerModel
	if d := m.fromAPI(ctx, ct, &prior); d.HasError() {
		t.Fatal(d)
	}
	var got configModel
	if d := m.Config.As(ctx, &got, basetypes.ObjectAsOptions{}); d.HasError() {
		t.Fatal(d)
	}
	if got.Args.IsNull() || len(got.Args.Elements()) != 0 {
		t.Errorf("args = %v, want the operator's empty list", got.Args)
	}
	if v := got.Env.Elements()["SECRET"]; v.(types.String).ValueString() != "s3cret" {
		t.Errorf("env SECRET = %v, want the prior value kept over %q", v, redacted)
	}
	if m.DrainTimeout.ValueString() != "1m" {
		t.Errorf("drain_timeout = %q, want 1m", m.DrainTimeout.ValueString())
	}
	var h healthModel
	if d := m.Health.As(ctx, &h, basetypes.ObjectAsOptions{}); d.HasError() {
		t.Fatal(d)
	}
	if h.Interval.ValueString() != "1m" || h.Timeout.ValueString() != "1s" || h.TCP.ValueBool() {
		t.Errorf("health = %+v", h)
	}
	var r restartModel
	if d := m.Restart.As(ctx, &r, basetypes.ObjectAsOptions{}); d.HasError() {
		t.Fatal(d)
	}
	if !r.Attempts.IsNull() || !r.Interval.IsNull() || !r.Delay.IsNull() || !r.MaxDelay.IsNull() {
		t.Errorf("restart = %+v, want zero values read as null", r)
	}

	// The restart policy's durations keep the operator's forms too.
	prior.Restart, d = types.ObjectValue(restartAttrTypes, map[string]attr.Value{
		"attempts": types.Int64Value(3), "interval": NewDuration("1m"), "delay": NewDuration("500ms"), "max_delay": NewDuration("60s"),
	})
	if d.HasError() {
		t.Fatal(d)
	}
	ct.Restart = &api.RestartPolicy{Attempts: 3, Interval: api.Duration(time.Minute),
		Delay: api.Duration(500 * time.Millisecond), MaxDelay: api.Duration(time.Minute)}
	if d := m.fromAPI(ctx, ct, &prior); d.HasError() {
		t.Fatal(d)
	}
	if d := m.Restart.As(ctx, &r, basetypes.ObjectAsOptions{}); d.HasError() {
		t.Fatal(d)
	}
	if r.Attempts.ValueInt64() != 3 || r.Interval.ValueString() != "1m" || r.Delay.ValueString() != "500ms" || r.MaxDelay.ValueString() != "60s" {
		t.Errorf("restart = %+v, want the operator's forms 3, 1m, 500ms, 60s", r)
	}
	if m.Name.ValueString() != "web" || m.PID.ValueInt64() != 42 || m.State.ValueString() != "running" ||
		m.StartedAt.ValueString() != "2026-01-02T03:04:05Z" {
		t.Errorf("model = %+v", m)
	}
}

// An oci container reads back with its image, no command, and its limits
// exactly as written, so a refresh plans nothing; an empty resources = {}
// (no limits, which the registry does not store) is kept too.
func TestContainerFromAPIImageAndResources(t *testing.T) {
	ctx := context.Background()
	ct := &api.Container{
		ID: "img-ab12c", Name: "img", Node: "n1", Driver: "oci",
		Services:  []api.ServiceRef{{Service: "greeter", Version: "1.1.0"}},
		Config:    api.DriverConfig{Image: "oci:/images/greeter:1.1.0"},
		Resources: &api.Resources{Memory: "0.25GiB", CPU: "0.50"},
	}
	var m containerModel
	if d := m.fromAPI(ctx, ct, &containerModel{}); d.HasError() {
		t.Fatal(d)
	}
	var cfg configModel
	if d := m.Config.As(ctx, &cfg, basetypes.ObjectAsOptions{}); d.HasError() {
		t.Fatal(d)
	}
	if !cfg.Command.IsNull() || cfg.Image.ValueString() != "oci:/images/greeter:1.1.0" {
		t.Errorf("config = %+v, want a null command and the image", cfg)
	}
	var r resourcesModel
	if d := m.Resources.As(ctx, &r, basetypes.ObjectAsOptions{}); d.HasError() {
		t.Fatal(d)
	}
	if r.Memory.ValueString() != "0.25GiB" || r.CPU.ValueString() != "0.50" {
		t.Errorf("resources = %+v, want 0.25GiB and 0.50 as written", r)
	}
	req, d := m.request(ctx)
	if d.HasError() {
		t.Fatal(d)
	}
	if req.Config.Image != ct.Config.Image || req.Config.Command != "" || req.Resources == nil || *req.Resources != *ct.Resources {
		t.Errorf("request = %+v %+v, want the container's image and resources back", req.Config, req.Resources)
	}

	// Only memory: cpu reads back null; no limits at all: no resources.
	ct.Resources = &api.Resources{Memory: "64MiB"}
	if d := m.fromAPI(ctx, ct, &containerModel{}); d.HasError() {
		t.Fatal(d)
	}
	if d := m.Resources.As(ctx, &r, basetypes.ObjectAsOptions{}); d.HasError() {
		t.Fatal(d)
	}
	if r.Memory.ValueString() != "64MiB" || !r.CPU.IsNull() {
		t.Errorf("resources = %+v, want memory 64MiB and a null cpu", r)
	}
	ct.Resources = nil
	if d := m.fromAPI(ctx, ct, &containerModel{}); d.HasError() {
		t.Fatal(d)
	}
	if !m.Resources.IsNull() {
		t.Errorf("resources = %v, want null", m.Resources)
	}
	empty, d := types.ObjectValue(resourcesAttrTypes, map[string]attr.Value{"memory": types.StringNull(), "cpu": types.StringNull()})
	if d.HasError() {
		t.Fatal(d)
	}
	if d := m.fromAPI(ctx, ct, &containerModel{Resources: empty}); d.HasError() {
		t.Fatal(d)
	}
	if !m.Resources.Equal(empty) {
		t.Errorf("resources = %v, want the operator's empty object kept", m.Resources)
	}
	if req, _ := m.request(ctx); req.Resources != nil {
		t.Errorf("request resources = %+v for an empty object, want none", req.Resources)
	}
}

func TestReadablePath(t *testing.T) {
	for _, tc := range []struct {
		p    path.Path
		want string
	}{
		{path.Root("health").AtName("http"), "health.http"},
		{path.Root("config").AtName("env").AtMapKey("A=B"), `config.env["A=B"]`},
		{path.Root("services").AtSetValue(types.StringValue("x")).AtName("version"), "services.version"},
		{path.Root("args").AtListIndex(2), "args[2]"},
	} {
		if got := readablePath(tc.p); got != tc.want {
			t.Errorf("readablePath(%s) = %q, want %q", tc.p, got, tc.want)
		}
	}
	if got := shortDuration(24 * time.Hour); got != "24h" {
		t.Errorf("shortDuration(24h) = %q", got)
	}
	if got := shortDuration(90 * time.Second); got != "1m30s" {
		t.Errorf("shortDuration(90s) = %q", got)
	}
	if got := shortDuration(10 * time.Millisecond); got != "10ms" {
		t.Errorf("shortDuration(10ms) = %q", got)
	}
}
