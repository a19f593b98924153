package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const simExamples = "../../examples/scenarios"

func runSimCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(append([]string{"sim"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

var traceLine = regexp.MustCompile(`(?m)^trace hash: [0-9a-f]{16}$`)

func TestSimRunPrintsSummarySeedAndTraceHash(t *testing.T) {
	code, out, errOut := runSimCmd(t, "run", filepath.Join(simExamples, "rolling-upgrade.hcl"), "--seed", "3")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"service", "greeter", "1.1.0", "calls", "retries", "latency", "p99", "convergence", "restarts",
		"judged 0 (0 violations), excused 0, stranded-by-force 0, unjudged 0 (must be 0)", "deterministic ok", "seed: 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if !traceLine.MatchString(out) {
		t.Errorf("no line %q in:\n%s", "trace hash: <16 lowercase hex digits>", out)
	}
	// The same seed gives the same hash.
	_, again, _ := runSimCmd(t, "run", "--seed", "3", filepath.Join(simExamples, "rolling-upgrade.hcl"), "--no-recheck")
	if traceLine.FindString(again) != traceLine.FindString(out) {
		t.Errorf("same seed, different hashes: %q and %q", traceLine.FindString(out), traceLine.FindString(again))
	}
}

func TestSimRunSweepsSeeds(t *testing.T) {
	code, out, errOut := runSimCmd(t, "run", filepath.Join(simExamples, "bad-deploy.hcl"), "--seeds", "1..4", "--no-recheck")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for seed := 1; seed <= 4; seed++ {
		if !regexp.MustCompile(`(?m)^seed ` + string(rune('0'+seed)) + ` .*trace hash: [0-9a-f]{16}$`).MatchString(out) {
			t.Errorf("no line for seed %d:\n%s", seed, out)
		}
	}
	if !strings.Contains(out, "4 passed, 0 failed") || !strings.Contains(errOut, "4/4 seeds") {
		t.Errorf("want a tally and a progress line;\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
}

func TestSimRunListsFaultWindows(t *testing.T) {
	code, out, errOut := runSimCmd(t, "run", filepath.Join(simExamples, "node-crash-during-upgrade.hcl"), "--seed", "2", "--no-recheck")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^fault +node-crash n-2: 22s to [0-9.]+s \(settle included\), excused [0-9]+ failed calls it touched$`),
		regexp.MustCompile(`(?m)^fault +node-restore n-2: 42s to `),
		regexp.MustCompile(`(?m)^fault +container-crash g2-1: 50s to `),
		regexp.MustCompile(`(?m)^failures +judged [0-9]+ \([0-9]+ violations\), excused [0-9]+, stranded-by-force 0, unjudged 0 \(must be 0\)$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("summary lacks %s:\n%s", want, out)
		}
	}
}

func TestSimRunWritesReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.html")
	code, out, errOut := runSimCmd(t, "run", filepath.Join(simExamples, "node-crash-during-upgrade.hcl"), "--report", path, "--no-recheck")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	html := string(b)
	for _, want := range []string{"<svg", "<polyline", "greeter@1.1.0", "The fleet after each step", "crash node n-2", "node-crash"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestSimRunExitsOneOnViolation(t *testing.T) {
	// Retiring takes far longer than the bound allows.
	src := `scenario "too-tight" {
  converge_within = "50ms"
}
nodes {
  prefix = "n"
  count  = 2
}
service "greeter" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}
containers "g" {
  count    = 2
  services = ["greeter@1.0.0"]
}
cohort "web" {
  clients = 20
  version = "1.0.0"
  calls   = ["greeter"]
}
step "15s" {
  remove_containers {
    prefix = "g"
    count  = 2
  }
}
`
	path := filepath.Join(t.TempDir(), "tight.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runSimCmd(t, "run", path, "--seed", "9")
	if code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, out)
	}
	if !strings.Contains(out, "converges VIOLATED") || !strings.Contains(out, "seed 9") || !traceLine.MatchString(out) {
		t.Errorf("want the violation with its seed and the trace hash:\n%s", out)
	}
}

func TestSimRunRejectsBadFileWithPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.hcl")
	if err := os.WriteFile(path, []byte("scenario \"x\" {}\nnodes {\n  prefix = \"n\"\n  count = \"many\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runSimCmd(t, "run", path)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if !strings.Contains(errOut, path+":4:") || !strings.Contains(errOut, "count must be a whole number") {
		t.Errorf("want the file, line 4 and the problem:\n%s", errOut)
	}
	code, out, _ := runSimCmd(t, "validate", filepath.Join(simExamples, "release-set.hcl"))
	if code != 0 || !strings.Contains(out, "is valid") {
		t.Errorf("validate: exit %d: %s", code, out)
	}
}

func TestSimBenchRunsTheScaleScenario(t *testing.T) {
	code, out, errOut := runSimCmd(t, "bench", "--nodes", "20", "--clients", "600", "--duration", "2m")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "events/s") || !traceLine.MatchString(out) {
		t.Errorf("bench output:\n%s", out)
	}
}

func TestSimValidateWarnsOfUnservedCohort(t *testing.T) {
	src := `scenario "unserved" {}
nodes {
  prefix = "n"
  count  = 1
}
service "greeter" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}
cohort "legacy" {
  clients = 5
  version = "0.9.0"
  calls   = ["greeter"]
}
`
	path := filepath.Join(t.TempDir(), "unserved.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runSimCmd(t, "validate", path)
	if code != 0 || !strings.Contains(out, "is valid") ||
		!strings.Contains(out, `warning: `+path+`:11:1: cohort "legacy" at 0.9.0 calls greeter, which no version ever admits`) {
		t.Errorf("validate: exit %d, want 0 and a warning naming the cohort:\n%s", code, out)
	}
	code, out, _ = runSimCmd(t, "run", path, "--no-recheck")
	if code != 1 || !strings.Contains(out, "unjudged: call from legacy@0.9.0") || !strings.Contains(out, "warning: ") {
		t.Errorf("run: exit %d, want 1 with unjudged failures and the warning:\n%s", code, out)
	}
	code, out, _ = runSimCmd(t, "validate", filepath.Join(simExamples, "rolling-upgrade.hcl"))
	if code != 0 || strings.Contains(out, "warning") {
		t.Errorf("validate rolling-upgrade: exit %d, want no warning:\n%s", code, out)
	}
}
