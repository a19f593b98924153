package main

import (
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
  coexist sim run <scenario.hcl> [--seed N | --seeds A..B] [--report out.html] [--no-recheck]
  coexist sim validate <scenario.hcl>
  coexist sim bench [--nodes 1000] [--clients 100000] [--rate 0.05] [--duration 10m] [--seed 1]

run simulates the scenario on a virtual clock and checks the invariants of
docs/design.md §9 on every event. Each seed is run twice, and a different trace
hash is a violation of determinism (--no-recheck runs it once). It prints a
summary table and "trace hash: <hex>" per seed, and exits 1 when any
invariant was violated.

Example:
  coexist sim run examples/scenarios/rolling-upgrade.hcl --seeds 1..20
`

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
	fs.Usage = func() { fmt.Fprint(stderr, simUsage); fs.PrintDefaults() }
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "sim run", pos, "<scenario.hcl>") {
		return 2
	}
	sc, err := sim.ParseFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "coexist sim run: %v\n", err)
		return 2
	}
	lo, hi := *seed, *seed
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
			status := "ok"
			if !r.OK() {
				status = fmt.Sprintf("VIOLATED (%d)", len(r.Violations))
			}
			conv := "not converged"
			if r.Converged {
				conv = "converged in " + r.ConvergedAfter.String()
			}
			fmt.Fprintf(stdout, "seed %-6d %-14s calls %-8d failed %-6d retries %-7d %s, trace hash: %s\n",
				r.Seed, status, r.Calls, r.Failed, r.Retries, conv, r.TraceHex())
		}
		fmt.Fprintf(stdout, "seeds %d..%d: %d passed, %d failed (%s wall)\n\n", lo, hi, n-failed, failed, time.Since(start).Round(time.Millisecond))
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
	fs.Usage = func() { fmt.Fprint(stderr, simUsage) }
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "sim validate", pos, "<scenario.hcl>") {
		return 2
	}
	sc, err := sim.ParseFile(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "coexist sim validate: %v\n", err)
		return 1
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
	r, err := sim.Run(sim.Scale(cfg), sim.Options{Seed: *seed, NoRecord: true})
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
