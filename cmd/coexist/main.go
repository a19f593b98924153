// Command coexist is the coexist daemon and CLI: `coexist server` runs a
// registry server, `coexist agent` a node agent; `coexist status`,
// `services`, `versions`, `containers`, `nodes` and `acl tokens` show and
// change the fleet (docs/design.md §5, CLI conventions).
package main

import (
	"fmt"
	"io"
	"os"
	"sort"
)

type command struct {
	synopsis string
	run      func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{
	"server": {"run a registry server (Raft member)", runServer},
	"status": {"print the registry's leader, peers and record counts", runStatus},
	"census": {"list the live client cohorts and watchers, and how far each lags", runCensus},
	"agent":  {"run a node agent and its gateway (--dev: with an embedded registry)", runAgent},
	"call":   {"make one call routed as a client would (--client name@version)", runCall},
	"route":  {"show which version and container a client's call would go to, and why", runRoute},
	"load":   {"call a service through a gateway at a steady rate, as one client version", runLoad},
	"image":  {"pack a static binary into an OCI image layout, for the oci driver", runImage},
	"sim":    {"simulate a fleet on a virtual clock: run scenarios, check the invariants", runSim},

	"services":   {"list and show services, their versions and the containers behind each", nounRunner("services", &servicesNoun)},
	"versions":   {"declare, retire and purge service versions", nounRunner("versions", &versionsNoun)},
	"containers": {"list containers, show one's status, read its logs", nounRunner("containers", &containersNoun)},
	"nodes":      {"list and show nodes", nounRunner("nodes", &nodesNoun)},
	"acl":        {"create, list and revoke ACL tokens (acl tokens ...)", runACL},
	"version":    {"print the version of this binary", runVersion},
}

// nounRunner runs `coexist name <verb>` of n.
func nounRunner(name string, n *noun) func(args []string, stdout, stderr io.Writer) int {
	return func(args []string, stdout, stderr io.Writer) int { return runNoun(name, *n, args, stdout, stderr) }
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "--version" {
		return runVersion(nil, stdout, stderr)
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "coexist: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: coexist <command> [flags]")
	fmt.Fprintln(w, "\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].synopsis)
	}
	fmt.Fprintln(w, "\nRun 'coexist <command> --help' for a command's flags.")
}
