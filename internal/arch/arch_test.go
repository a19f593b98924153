package arch

import (
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/coexist-dev/coexist"

// rule is what one package of the module may import of the module and what
// it must not reach at all, directly or not.
type rule struct {
	// may lists the module's packages it may import directly (relative
	// to the module). A package with no rule may import any but those
	// that nobody may import.
	may []string
	// never lists import path prefixes that must not be among its
	// dependencies, however deep.
	never []string
	// neverPkgs lists packages, each exactly, that must not be among its
	// dependencies: a package whose subpackages are allowed.
	neverPkgs []string
}

// rules are the arrows of docs/design.md §3.
var rules = map[string]rule{
	"api":                 {may: nil, never: []string{module + "/"}},
	"routing":             {may: []string{"api"}},
	"raftregistry/state":  {may: []string{"api"}, never: []string{"github.com/hashicorp/raft"}},
	"raftregistry/census": {may: []string{"api", "routing"}, never: []string{"github.com/hashicorp/raft"}},
	"raftregistry":        {may: []string{"api", "raftregistry/state", "raftregistry/census"}},
	"raftregistry/httpd":  {may: []string{"api", "raftregistry", "raftregistry/state", "raftregistry/census", "routing", "internal/netlimit"}},
	"internal/netlimit":   {may: nil},
	"internal/buildinfo":  {may: nil},
	"internal/linearize":  {may: nil},
	"internal/hostbed":    {may: []string{"api", "client", "internal/linearize"}, never: []string{module + "/raftregistry", module + "/node"}},
	"ui":                  {may: nil},
	"node/driver":         {may: nil},
	"client":              {may: []string{"api", "routing", "client/callpolicy"}, never: []string{module + "/raftregistry"}},
	// The SDK's call policy is a pure core the simulator runs too.
	"client/callpolicy": {may: []string{"api", "routing"}, never: []string{module + "/raftregistry", module + "/node"}},
	"provider":          {may: []string{"api", "routing"}, never: []string{module + "/raftregistry"}},
	// The node's pure cores: the simulator runs them too.
	"node/reconcile": {may: []string{"api"}},
	"node/inflight":  {may: nil},
	// The gateway's decision on a call, a pure core both serving paths and
	// the simulator take.
	"node/gateway/admit": {may: []string{"api", "routing"}, never: []string{"github.com/prometheus/", "net/http/httputil"}},
	// The simulator runs the pure cores and nothing of what wraps them: no
	// agent, driver, gateway serving code or engine, Raft, Prometheus or
	// HTTP server (docs/design.md §3, "Pure cores").
	"sim": {
		may: []string{"api", "routing", "raftregistry/state", "raftregistry/census", "client/callpolicy",
			"node/reconcile", "node/inflight", "node/gateway/admit"},
		never: []string{module + "/node/driver", module + "/node/gateway/internal/", module + "/raftregistry/httpd",
			"github.com/prometheus/", "github.com/hashicorp/raft", "net/http/httputil", "net/http/httptest"},
		neverPkgs: []string{module + "/node", module + "/node/gateway", module + "/raftregistry", module + "/client"},
	},
}

// prefixRules apply to every package under a folder.
var prefixRules = map[string]rule{
	"node": {never: []string{module + "/raftregistry", module + "/client", module + "/provider"}},
}

// importedOnlyBy: nothing imports cmd, sim or provider, except the one
// place each is meant for.
var importedOnlyBy = map[string][]string{
	"cmd/":     nil,
	"sim":      {"cmd/coexist"},
	"provider": {""}, // the provider binary at the module's root
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func TestLayout(t *testing.T) {
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", module+"/...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs, err := decode(strings.NewReader(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages; the test is not looking at the module", len(pkgs))
	}
	for _, p := range check(pkgs) {
		t.Error(p)
	}
}

func decode(r io.Reader) ([]pkg, error) {
	var pkgs []pkg
	dec := json.NewDecoder(r)
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			return nil, fmt.Errorf("decode go list: %w", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs, nil
}

// check returns every broken arrow among pkgs, one line each.
func check(pkgs []pkg) []string {
	var problems []string
	for _, p := range pkgs {
		rel, ok := relative(p.ImportPath)
		if !ok {
			continue
		}
		rs := []rule{}
		if r, ok := rules[rel]; ok {
			rs = append(rs, r)
			for _, imp := range p.Imports {
				if irel, ok := relative(imp); ok && !slices.Contains(r.may, irel) {
					problems = append(problems, fmt.Sprintf("%s imports %s; it may import only %v (docs/design.md §3)", rel, irel, r.may))
				}
			}
		}
		for prefix, r := range prefixRules {
			if rel == prefix || strings.HasPrefix(rel, prefix+"/") {
				rs = append(rs, r)
			}
		}
		for _, r := range rs {
			for _, dep := range p.Deps {
				for _, never := range r.never {
					if dep == strings.TrimSuffix(never, "/") || strings.HasPrefix(dep, never) && dep != p.ImportPath {
						problems = append(problems, fmt.Sprintf("%s depends on %s (docs/design.md §3 keeps it out)", rel, dep))
					}
				}
				if slices.Contains(r.neverPkgs, dep) {
					problems = append(problems, fmt.Sprintf("%s depends on %s (docs/design.md §3 keeps it out)", rel, dep))
				}
			}
		}
		for _, imp := range p.Imports {
			irel, ok := relative(imp)
			if !ok {
				continue
			}
			for target, allowed := range importedOnlyBy {
				hit := irel == target || strings.HasSuffix(target, "/") && strings.HasPrefix(irel, target)
				if hit && !slices.Contains(allowed, rel) {
					problems = append(problems, fmt.Sprintf("%s imports %s, which nothing but %q may import (docs/design.md §3)", rel, irel, allowed))
				}
			}
		}
	}
	slices.Sort(problems)
	return slices.Compact(problems)
}

// relative is path relative to the module, and whether it is in the module.
func relative(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// TestCheckRefuses plants a wrong arrow of each kind and expects check to
// name it: a check that cannot fail holds nothing.
func TestCheckRefuses(t *testing.T) {
	m := func(rel string) string {
		if rel == "" {
			return module
		}
		return module + "/" + rel
	}
	cases := []struct {
		name string
		pkgs []pkg
		want string
	}{
		{"routing imports node", []pkg{{ImportPath: m("routing"), Imports: []string{m("api"), m("node")}}},
			"routing imports node; it may import only [api]"},
		{"state reaches raft", []pkg{{ImportPath: m("raftregistry/state"), Imports: []string{m("api")}, Deps: []string{"github.com/hashicorp/raft"}}},
			"raftregistry/state depends on github.com/hashicorp/raft"},
		{"api imports routing", []pkg{{ImportPath: m("api"), Imports: []string{m("routing")}, Deps: []string{m("routing")}}},
			"api imports routing; it may import only []"},
		{"the agent reaches the registry's internals", []pkg{{ImportPath: m("node"), Imports: []string{m("raftregistry")}, Deps: []string{m("raftregistry")}}},
			"node depends on " + m("raftregistry")},
		{"the call policy imports the SDK", []pkg{{ImportPath: m("client/callpolicy"), Imports: []string{m("api"), m("client")}}},
			"client/callpolicy imports client; it may import only [api routing]"},
		{"client imports sim", []pkg{{ImportPath: m("client"), Imports: []string{m("sim")}}},
			"client imports sim, which nothing but"},
		{"the simulator reaches the agent", []pkg{{ImportPath: m("sim"), Imports: []string{m("node/reconcile")}, Deps: []string{m("node/reconcile"), m("node")}}},
			"sim depends on " + m("node") + " "},
		{"the simulator reaches Prometheus", []pkg{{ImportPath: m("sim"), Imports: []string{m("node/reconcile")}, Deps: []string{"github.com/prometheus/client_golang/prometheus"}}},
			"sim depends on github.com/prometheus/client_golang/prometheus"},
		{"the simulator imports the gateway", []pkg{{ImportPath: m("sim"), Imports: []string{m("node/gateway")}}},
			"sim imports node/gateway; it may import only"},
		{"the reconciler imports the driver", []pkg{{ImportPath: m("node/reconcile"), Imports: []string{m("api"), m("node/driver")}}},
			"node/reconcile imports node/driver; it may import only [api]"},
		{"anything imports cmd", []pkg{{ImportPath: m("bench/gateway"), Imports: []string{m("cmd/coexist")}}},
			"bench/gateway imports cmd/coexist, which nothing but"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := check(tc.pkgs)
			if !slices.ContainsFunc(got, func(p string) bool { return strings.Contains(p, tc.want) }) {
				t.Errorf("check = %q, want a line containing %q", got, tc.want)
			}
		})
	}
	good := []pkg{
		{ImportPath: m("routing"), Imports: []string{m("api"), "fmt"}, Deps: []string{m("api"), "fmt"}},
		{ImportPath: m("cmd/coexist"), Imports: []string{m("sim"), m("node")}},
		{ImportPath: m(""), Imports: []string{m("provider")}},
		{ImportPath: m("sim"), Imports: []string{m("node/reconcile")}, Deps: []string{m("node/reconcile"), m("api")}},
	}
	if got := check(good); len(got) != 0 {
		t.Errorf("check of a good layout = %q", got)
	}
}
