package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
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

// tooTight removes every container with nothing to replace them, and
// bounds convergence far below what retiring takes.
const tooTight = `scenario "too-tight" {
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

func TestSimRunExitsOneOnViolation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tight.hcl")
	if err := os.WriteFile(path, []byte(tooTight), 0o600); err != nil {
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
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 0 // every progress call prints
	code, out, errOut := runSimCmd(t, "bench", "--nodes", "20", "--clients", "600", "--duration", "2m", "--progress")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !regexp.MustCompile(`(?m)^sim: seed 1: [0-9hms.]+ of 2m0s virtual, [0-9]+ events`).MatchString(errOut) {
		t.Errorf("bench --progress: no progress line:\n%s", errOut)
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

func TestSimHelpOnEverySubcommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"coexist sim run <scenario.hcl>", "coexist sim validate <scenario.hcl>", "coexist sim bench", "'coexist sim <subcommand> --help'"}},
		{[]string{"help"}, []string{"coexist sim run <scenario.hcl>"}},
		{[]string{"run", "--help"}, []string{"Usage: coexist sim run <scenario.hcl> [flags]", "-seeds", "-progress", "-no-recheck", "Exit status"}},
		{[]string{"run", "examples/x.hcl", "-h"}, []string{"Usage: coexist sim run <scenario.hcl> [flags]"}},
		{[]string{"validate", "--help"}, []string{"Usage: coexist sim validate <scenario.hcl>", "file:line:col", "Exit status"}},
		{[]string{"bench", "--help"}, []string{"Usage: coexist sim bench [flags]", "-nodes", "-clients"}},
	} {
		code, out, errOut := runSimCmd(t, tc.args...)
		if code != 0 {
			t.Errorf("sim %v: exit %d, want 0\n%s%s", tc.args, code, out, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("sim %v: help lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
}

func TestSimBadFilesExitTwoWithEveryProblemInLineOrder(t *testing.T) {
	dir := t.TempDir()
	// Line 2: a duration that does not read (the decoder); line 16: a
	// service never declared, line 19: a node never declared (the
	// validator). One pass reports the three, in line order.
	invalid := filepath.Join(dir, "invalid.hcl")
	if err := os.WriteFile(invalid, []byte(`scenario "bad" {
  converge_within = "soon"
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
cohort "web" {
  clients = 10
  version = "1.2.0"
  calls   = ["orders"]
}
step "10s" {
  crash_node { node = "n-7" }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	unparsable := filepath.Join(dir, "unparsable.hcl")
	if err := os.WriteFile(unparsable, []byte("scenario \"x\" {\n  duration = \n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"run", "validate"} {
		code, out, errOut := runSimCmd(t, sub, invalid, "--no-recheck")
		if sub == "validate" {
			code, out, errOut = runSimCmd(t, sub, invalid)
		}
		if code != 2 {
			t.Errorf("sim %s of an invalid file: exit %d, want 2\n%s%s", sub, code, out, errOut)
		}
		want := regexp.MustCompile(`(?s)^coexist sim ` + sub + `: ` + regexp.QuoteMeta(invalid) + `:2:21: Invalid converge_within; "soon" is not a duration.*\n` +
			`coexist sim ` + sub + `: ` + regexp.QuoteMeta(invalid) + `:16:13: cohort "web" calls service "orders", which is never declared\n` +
			`coexist sim ` + sub + `: ` + regexp.QuoteMeta(invalid) + `:19:23: crash_node: node "n-7" is not declared\n` +
			`coexist sim ` + sub + `: ` + regexp.QuoteMeta(invalid) + `: 3 problems\n$`)
		if !want.MatchString(errOut) {
			t.Errorf("sim %s: want the three problems in line order, each at its attribute:\n%s", sub, errOut)
		}
		code, out, errOut = runSimCmd(t, sub, unparsable)
		if code != 2 || !strings.Contains(errOut, unparsable+":2:") {
			t.Errorf("sim %s of a file that does not parse: exit %d, want 2 and the position\n%s%s", sub, code, out, errOut)
		}
		code, _, errOut = runSimCmd(t, sub, filepath.Join(dir, "missing.hcl"))
		if code != 2 || !strings.Contains(errOut, "missing.hcl") {
			t.Errorf("sim %s of a missing file: exit %d, want 2\n%s", sub, code, errOut)
		}
	}
}

func TestSimSweepNamesViolatedInvariantsPerSeedAndFailuresPerCohort(t *testing.T) {
	// tooTight with a second cohort and a crash: web's and ops's calls
	// fail unjudged and the run does not converge.
	src := tooTight + `cohort "ops" {
  clients = 5
  version = "1.1.0"
  calls   = ["greeter"]
}
step "15s" {
  crash_container { id = "g-1" }
}
`
	path := filepath.Join(t.TempDir(), "tight.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runSimCmd(t, "run", path, "--seeds", "1..3", "--no-recheck")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errOut)
	}
	for seed := 1; seed <= 3; seed++ {
		line := regexp.MustCompile(fmt.Sprintf(`(?m)^seed %d +VIOLATED .*trace hash: [0-9a-f]{16}; violated: available \([0-9]+\), converges \(1\)$`, seed))
		if !line.MatchString(out) {
			t.Errorf("no line for seed %d naming the invariants it violated:\n%s", seed, out)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^seeds 1\.\.3: 0 passed, 3 failed`),
		regexp.MustCompile(`(?m)^cohort ops over seeds 1\.\.3: calls [0-9]+, failed [1-9][0-9]*: judged [0-9]+ \(0 violations\), excused [0-9]+, stranded-by-force 0, unjudged [1-9][0-9]*$`),
		regexp.MustCompile(`(?m)^cohort web over seeds 1\.\.3: calls [0-9]+, failed [1-9][0-9]*: .* unjudged [1-9][0-9]*$`),
		// The first failing seed's summary: its cohorts and fault windows.
		regexp.MustCompile(`(?m)^cohort +web: calls [0-9]+, failed [0-9]+: `),
		regexp.MustCompile(`(?m)^fault +container-crash g-1: 15s to `),
		regexp.MustCompile(`(?m)^seed: 1$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}

func TestSimRunShowsProgressOfALongSeed(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = 0 // every progress call prints
	file := filepath.Join(simExamples, "crash-loop-gives-up.hcl")
	code, out, errOut := runSimCmd(t, "run", file, "--progress")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	lines := regexp.MustCompile(`(?m)^sim: seed 1: [0-9hms.]+ of 1m30s virtual, [0-9]+ events, [0-9]+s wall$`).FindAllString(errOut, -1)
	if len(lines) < 2 {
		t.Errorf("want progress lines on stderr:\n%s", errOut)
	}
	if !strings.Contains(errOut, "sim: seed 1 (second run, for determinism): ") {
		t.Errorf("want the determinism run's progress too:\n%s", errOut)
	}
	if strings.Contains(out, "sim: seed") {
		t.Errorf("progress on stdout:\n%s", out)
	}
	// Not a terminal and no --progress: nothing.
	_, _, errOut = runSimCmd(t, "run", file, "--no-recheck")
	if strings.Contains(errOut, "sim: seed") {
		t.Errorf("progress without --progress on a stderr that is no terminal:\n%s", errOut)
	}
}
