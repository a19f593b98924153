package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// runCensus prints the registry's census: the live client cohorts
// (name@version, instances, services called) and every live watcher with its
// lag (docs/design.md §5).
func runCensus(args []string, stdout, stderr io.Writer) int {
	var cf clientFlags
	fs := flag.NewFlagSet("census", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf.register(fs)
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	asJSON := fs.Bool("json", false, "print the census as JSON")
	describe(fs, "[--json]", `census lists who routes: the live client cohorts the registry counts
(name@version, instances, services called) and every live watcher, SDK
client or agent, with how far behind each table it is. A change is in
force once every live watcher of its table has seen it (docs/design.md §5).`,
		"coexist census\ncoexist census --json | jq '.cohorts'")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "census", pos) {
		return 2
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "coexist census: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	cs, _, err := c.Census().Get(ctx, nil)
	if err != nil {
		fmt.Fprintf(stderr, "coexist census: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(cs); err != nil {
			fmt.Fprintf(stderr, "coexist census: %v\n", err)
			return 1
		}
		return 0
	}
	if err := printCensus(stdout, cs); err != nil {
		fmt.Fprintf(stderr, "coexist census: %v\n", err)
		return 1
	}
	return 0
}

// printCensus prints the cohorts, then the watchers.
func printCensus(w io.Writer, cs *api.Census) error {
	if !cs.Complete {
		fmt.Fprintf(w, "Census incomplete: waiting for %s\n\n", strings.Join(cs.Missing, ", "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "COHORT\tINSTANCES\tCALLS")
	for _, c := range cs.Cohorts {
		fmt.Fprintf(tw, "%s@%s\t%d\t%s\n", c.Name, c.Version, c.Instances, orDash(strings.Join(c.Calls, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return printWatchers(w, cs.Watchers, false)
}

// printWatchers prints one line per watcher and table: who, where, the
// index it acknowledged and its lag; only the lagging ones when lagging.
func printWatchers(w io.Writer, ws []api.Watcher, lagging bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tWATCHER\tINSTANCE\tSERVER\tTABLE\tINDEX\tLAG")
	for _, wt := range ws {
		for _, t := range wt.Tables {
			if lagging && t.Lag == 0 {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s@%s\t%s\t%s\t%s\t%d\t%d (%s)\n", wt.Kind, wt.Name, wt.Version, wt.Instance, wt.Server,
				t.Table, t.Index, t.Lag, t.LagTime.Std().Round(time.Millisecond))
		}
	}
	return tw.Flush()
}
