package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// The operator's commands are `coexist <noun> <verb>` (docs/design.md §5,
// CLI conventions): every verb prints a table by default and the registry's
// JSON with --json, and its --help says what it does and shows an example.

// verb is one `coexist <noun> <verb>` command that talks to the registry.
type verb struct {
	synopsis string
	// usage is the argument part of the usage line: "<service> <version>".
	usage string
	// args are the positional arguments, as checkArgs takes them.
	args []string
	// about is one paragraph more than the synopsis; example is a command
	// line (or several), shown under "Example:".
	about, example string
	// flags defines the verb's own flags; nil: none.
	flags func(fs *flag.FlagSet)
	// run does the work; it returns what --json prints and a function that
	// prints the table.
	run func(ctx context.Context, c *api.Client, pos []string, stdout io.Writer) (any, func(w io.Writer) error, error)
	// stream, when set instead of run, writes its own output (logs).
	stream func(ctx context.Context, c *api.Client, cf *clientFlags, pos []string, stdout io.Writer, asJSON bool) error
	// noTimeout: the verb may run until interrupted (logs --follow).
	noTimeout func() bool
}

// noun is a group of verbs, such as `coexist services`.
type noun struct {
	about string
	verbs map[string]*verb
}

// runNoun dispatches `coexist name <verb> args...`.
func runNoun(name string, n noun, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		nounUsage(stderr, name, n)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	v, ok := n.verbs[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "coexist %s: unknown command %q (see 'coexist %s --help')\n", name, args[0], name)
		return 2
	}
	return runVerb(name+" "+args[0], v, args[1:], stdout, stderr)
}

func nounUsage(w io.Writer, name string, n noun) {
	fmt.Fprintf(w, "Usage: coexist %s <command> [flags]\n\n%s\n\nCommands:\n", name, n.about)
	names := make([]string, 0, len(n.verbs))
	for v := range n.verbs {
		names = append(names, v)
	}
	sort.Strings(names)
	for _, v := range names {
		fmt.Fprintf(w, "  %-8s %s\n", v, n.verbs[v].synopsis)
	}
	if len(names) > 0 && n.verbs[names[0]].example != "" {
		fmt.Fprintf(w, "\nExample:\n  %s\n", strings.Split(n.verbs[names[0]].example, "\n")[0])
	}
	fmt.Fprintf(w, "\nRun 'coexist %s <command> --help' for a command's flags and an example.\n", name)
}

func runVerb(name string, v *verb, args []string, stdout, stderr io.Writer) int {
	var cf clientFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of a table, for scripts")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the registry")
	if v.flags != nil {
		v.flags(fs)
	}
	about := upperFirst(v.synopsis) + "."
	if v.about != "" {
		about += " " + v.about
	}
	describe(fs, strings.TrimSpace("[flags] "+v.usage), about, v.example)
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, name, pos, v.args...) {
		return 2
	}
	c, err := cf.client()
	if err != nil {
		fmt.Fprintf(stderr, "coexist %s: %v\n", name, err)
		return 2
	}
	ctx := context.Background()
	if v.noTimeout == nil || !v.noTimeout() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *timeout)
		defer cancel()
	}
	if v.stream != nil {
		err = v.stream(ctx, c, &cf, pos, stdout, *asJSON)
	} else {
		var out any
		var table func(io.Writer) error
		out, table, err = v.run(ctx, c, pos, stdout)
		if err == nil {
			if *asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				err = enc.Encode(out)
			} else {
				err = table(stdout)
			}
		}
	}
	if err != nil {
		return verbFailed(stderr, name, err)
	}
	return 0
}

// describe sets the --help of the command fs: its usage line (after
// "coexist <name> "), a description and an example, then its flags.
func describe(fs *flag.FlagSet, usage, about, example string) {
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: coexist %s %s\n\n%s\n\nExample:\n", fs.Name(), usage, about)
		for _, l := range strings.Split(example, "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
}

// errUsage marks an error in what the user typed: exit 2.
var errUsage = errors.New("usage")

// verbFailed prints err in one line (and a hint for a refused token) and
// returns the exit code: 2 for bad usage, 1 otherwise.
func verbFailed(stderr io.Writer, name string, err error) int {
	msg := err.Error()
	if errors.Is(err, errUsage) {
		msg = strings.TrimSuffix(msg, ": "+errUsage.Error())
	}
	fmt.Fprintf(stderr, "coexist %s: %s\n", name, msg)
	if api.IsUnauthorized(err) {
		fmt.Fprintln(stderr, "hint: set COEXIST_TOKEN (or --token-file) to a valid token of a role allowed to do this")
	}
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// table writes rows under a header, aligned, with a flush.
func table(w io.Writer, header string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// orDash shows an empty cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ago prints how long ago t was, rounded, or "-".
func ago(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	d := now.Sub(*t)
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String() + " ago"
	case d < time.Hour:
		return d.Round(time.Minute).String() + " ago"
	default:
		return d.Round(time.Hour).String() + " ago"
	}
}
