package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coexist-dev/coexist/sim"
)

const simUsage = `Usage:
  coexist sim run <scenario.hcl> [--seed N | --seeds A..B] [--report out.html] [--no-recheck] [--progress]
  coexist sim validate <scenario.hcl>
  coexist sim bench [--nodes 1000] [--clients 100000] [--rate 0.1] [--duration 10m] [--seed 1] [--progress]

run simulates a scenario on a virtual clock and checks the invariants of
docs/design.md §9 on every event; validate reports every problem of a
scenario file; bench runs the 1,000-node scale scenario.
Run 'coexist sim <subcommand> --help' for a subcommand's flags.

Example:
  coexist sim run examples/scenarios/rolling-upgrade.hcl --seeds 1..20
`

const simRunUsage = `Usage: coexist sim run <scenario.hcl> [flags]

Simulates the scenario on a virtual clock and checks the invariants of
docs/design.md §9 on every event. Each seed is run twice, and a different
trace hash is a violation of determinism (--no-recheck runs it once). It
prints a summary (calls per version, failures per cohort, fault windows,
convergence, invariants) with "seed: N" and "trace hash: <hex>"; a sweep
(--seeds A..B) prints a line per seed naming the invariants it violated,
then the failures per cohort over every seed and the summary of the first
failing seed. Exit status: 0 when every invariant held, 1 when one was
violated, 2 for bad usage or a scenario file that does not parse or
validate (every problem is printed, file:line:col).

Example:
  coexist sim run examples/scenarios/rolling-upgrade.hcl --seeds 1..20 --report out.html

Flags:
`

const simValidateUsage = `Usage: coexist sim validate <scenario.hcl>

Parses and validates a scenario file and prints every problem, each as
file:line:col: what is wrong, in the order of the file; then the warnings
(a cohort no version ever admits). Exit status: 0 when the file is valid
(warnings or not), 2 when it is not, or for bad usage.

Example:
  coexist sim validate examples/scenarios/release-set.hcl
`

const simBenchUsage = `Usage: coexist sim bench [flags]

Runs the scale scenario (sim.Scale): nodes with orders and catalog
containers, clients in three cohorts, an upgrade of orders; prints the
summary and the simulator's speed in events per second. Exit status: 0
when every invariant held, 1 when one was violated, 2 for bad usage.

Example:
  coexist sim bench --nodes 100 --clients 10000 --duration 2m

Flags:
`

// progressEvery is how often a long single run prints its progress.
var progressEvery = 2 * time.Second

func runSim(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, simUsage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "run":
		return simRun(args[1:], stdout, stderr)
	case "validate":
		return simValidate(args[1:], stdout, stderr)
	case "bench":
		return simBench(args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "coexist sim: unknown subcommand %q\n\n%s", args[0], simUsage)
	return 2
}

// seedRange reads "A..B" (inclusive) or a single seed.
func seedRange(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "..")
	if !ok {
		b = a
	}
	lo, err1 := strconv.ParseUint(strings.TrimSpace(a), 10, 64)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
	if err1 != nil || err2 != nil || hi < lo {
		return 0, 0, fmt.Errorf("--seeds %q: want A..B with A <= B, e.g. 1..50", s)
	}
	return lo, hi, nil
}

func simRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 1, "the seed of the run")
	seeds := fs.String("seeds", "", "a range of seeds to sweep, A..B inclusive")
	report := fs.String("report", "", "write an HTML report (chart and fleet state) of the run, or of the first failing seed of a sweep")
	noRecheck := fs.Bool("no-recheck", false, "run each seed once, leaving determinism unchecked")
	parallel := fs.Int("parallel", runtime.GOMAXPROCS(0), "seeds run at once in a sweep")
	progress := fs.Bool("progress", false, "print a line of progress (virtual time, events) on stderr every few seconds of a single seed's run; the default when stderr is a terminal")
	fs.Usage = func() { fmt.Fprint(stderr, simRunUsage); fs.PrintDefaults() }
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "sim run", pos, "<scenario.hcl>") {
		return 2
	}
	sc, ok := parseScenario(stderr, "sim run", pos[0])
	if !ok {
		return 2
	}
	lo, hi := *seed, *seed
	var err error
	if *seeds != "" {
		if lo, hi, err = seedRange(*seeds); err != nil {
			fmt.Fprintf(stderr, "coexist sim run: %v\n", err)
			return 2
		}
	}
	n := int(hi - lo + 1)
	results := make([]*sim.Result, n)
	errs := make([]error, n)
	opt := func(s uint64) sim.Options { return sim.Options{Seed: s, NoRecord: *report == "" || n > 1} }
	showProgress := n == 1 && (*progress || isTerminal(stderr))
	runOne := func(i int) {
		o := opt(lo + uint64(i))
		if *noRecheck {
			results[i], errs[i] = sim.Run(sc, o)
		} else {
			results[i], errs[i] = sim.Check(sc, o)
		}
	}
	start := time.Now()
	if n == 1 {
		if showProgress {
			opt = withProgress(opt, stderr)
		}
		runOne(0)
	} else {
		sweep(n, max(1, *parallel), runOne, results, stderr, start)
	}
	for _, e := range errs {
		if e != nil {
			fmt.Fprintf(stderr, "coexist sim run: %v\n", e)
			return 2
		}
	}

	failed := 0
	var show *sim.Result
	for _, r := range results {
		if !r.OK() {
			failed++
			if show == nil {
				show = r
			}
		}
	}
	if n == 1 {
		show = results[0]
	} else {
		for _, r := range results {
			conv := "not converged"
			if r.Converged {
				conv = "converged in " + r.ConvergedAfter.String()
			}
			status, violated := "ok", ""
			if !r.OK() {
				status, violated = "VIOLATED", "; violated: "+violatedList(r)
			}
			fmt.Fprintf(stdout, "seed %-6d %-8s calls %-8d failed %-6d retries %-7d %s, trace hash: %s%s\n",
				r.Seed, status, r.Calls, r.Failed, r.Retries, conv, r.TraceHex(), violated)
		}
		fmt.Fprintf(stdout, "seeds %d..%d: %d passed, %d failed (%s wall)\n", lo, hi, n-failed, failed, time.Since(start).Round(time.Millisecond))
		for _, c := range sim.SumCohorts(results) {
			fmt.Fprintf(stdout, "%s %s over seeds %d..%d: %s\n", c.Kind(), c.Cohort, lo, hi, c.Tally())
		}
		fmt.Fprintln(stdout)
		if show == nil {
			show = results[0]
		}
	}
	show.WriteSummary(stdout)
	if *report != "" {
		if n > 1 {
			// Sweeps run without recording; run the chosen seed again.
			r, err := sim.Run(sc, sim.Options{Seed: show.Seed})
			if err != nil {
				fmt.Fprintf(stderr, "coexist sim run: %v\n", err)
				return 2
			}
			r.DeterminismChecked, r.Violations, r.ViolationCounts = show.DeterminismChecked, show.Violations, show.ViolationCounts
			show = r
		}
		if err := writeReport(*report, show); err != nil {
			fmt.Fprintf(stderr, "coexist sim run: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "report: %s\n", *report)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

// violatedList names the invariants a run violated, each with its count:
// "available (3), converges (1)".
func violatedList(r *sim.Result) string {
	var parts []string
	for _, inv := range sim.Invariants {
		if c := r.ViolationCounts[inv]; c > 0 {
			parts = append(parts, fmt.Sprintf("%s (%d)", inv, c))
		}
	}
	return strings.Join(parts, ", ")
}

// parseScenario reads a scenario file, printing every problem of a file
// that does not parse or validate on its own line.
func parseScenario(stderr io.Writer, cmd, path string) (*sim.Scenario, bool) {
	sc, err := sim.ParseFile(path)
	if err == nil {
		return sc, true
	}
	var ve *sim.ValidationError
	if !errors.As(err, &ve) {
		fmt.Fprintf(stderr, "coexist %s: %v\n", cmd, err)
		return nil, false
	}
	for _, p := range ve.Problems {
		fmt.Fprintf(stderr, "coexist %s: %s\n", cmd, p)
	}
	if len(ve.Problems) > 1 {
		fmt.Fprintf(stderr, "coexist %s: %s: %d problems\n", cmd, path, len(ve.Problems))
	}
	return nil, false
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// withProgress makes the options of a run print a line on stderr every
// progressEvery of wall time: the virtual time, the events and the wall
// time so far.
func withProgress(opt func(uint64) sim.Options, stderr io.Writer) func(uint64) sim.Options {
	return func(seed uint64) sim.Options {
		o := opt(seed)
		start := time.Now()
		last := start
		o.Progress = func(p sim.Progress) {
			now := time.Now()
			if now.Sub(last) < progressEvery {
				return
			}
			last = now
			run := ""
			if p.Recheck {
				run = " (second run, for determinism)"
			}
			fmt.Fprintf(stderr, "sim: seed %d%s: %s of %s virtual, %d events, %s wall\n", p.Seed, run,
				p.Virtual.Round(time.Millisecond), p.End, p.Events, now.Sub(start).Round(time.Second))
		}
		return o
	}
}

// sweep runs n seeds on workers, with a progress line on stderr.
func sweep(n, workers int, runOne func(int), results []*sim.Result, stderr io.Writer, start time.Time) {
	next := make(chan int)
	var mu sync.Mutex
	done, bad := 0, 0
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				runOne(i)
				mu.Lock()
				done++
				if results[i] != nil && !results[i].OK() {
					bad++
				}
				el := time.Since(start)
				eta := time.Duration(float64(el) / float64(done) * float64(n-done))
				fmt.Fprintf(stderr, "\rsim: %d/%d seeds, %d failing, %s elapsed, about %s left   ", done, n, bad,
					el.Round(time.Second), eta.Round(time.Second))
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	fmt.Fprintln(stderr)
}

func writeReport(path string, r *sim.Result) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := r.WriteReport(f); err != nil {
		f.Close()
		return fmt.Errorf("write report: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

func simValidate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sim validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, simValidateUsage) }
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "sim validate", pos, "<scenario.hcl>") {
		return 2
	}
	sc, ok := parseScenario(stderr, "sim validate", pos[0])
	if !ok {
		return 2
	}
	fmt.Fprintf(stdout, "%s: scenario %q is valid: %d nodes, %d cohorts, %d steps\n", pos[0], sc.Name, len(sc.Nodes), len(sc.Cohorts), len(sc.Steps))
	for _, w := range sc.Warnings() {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return 0
}

func simBench(args []string, stdout, stderr io.Writer) int {
	cfg := sim.DefaultScale()
	fs := flag.NewFlagSet("sim bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.Nodes, "nodes", cfg.Nodes, "nodes (two orders and one catalog container each, then two more orders)")
	fs.IntVar(&cfg.Clients, "clients", cfg.Clients, "clients, in three cohorts")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "calls per second per client")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "virtual time")
	seed := fs.Uint64("seed", 1, "the seed")
	progress := fs.Bool("progress", false, "print a line of progress (virtual time, events) on stderr every few seconds; the default when stderr is a terminal")
	fs.Usage = func() { fmt.Fprint(stderr, simBenchUsage); fs.PrintDefaults() }
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "sim bench", pos) {
		return 2
	}
	if cfg.Nodes < 1 || cfg.Clients < 3 || cfg.Duration <= 0 {
		fmt.Fprintln(stderr, "coexist sim bench: want at least 1 node, 3 clients and a positive duration")
		return 2
	}
	opt := func(s uint64) sim.Options { return sim.Options{Seed: s, NoRecord: true} }
	if *progress || isTerminal(stderr) {
		opt = withProgress(opt, stderr)
	}
	r, err := sim.Run(sim.Scale(cfg), opt(*seed))
	if err != nil {
		fmt.Fprintf(stderr, "coexist sim bench: %v\n", err)
		return 2
	}
	r.WriteSummary(stdout)
	fmt.Fprintf(stdout, "bench: %d nodes, %d clients, %s virtual: %d events in %s wall, %.2fM events/s\n",
		cfg.Nodes, cfg.Clients, cfg.Duration, r.Events, r.Wall.Round(time.Millisecond), r.EventsPerSecond()/1e6)
	if !r.OK() {
		return 1
	}
	return 0
}
