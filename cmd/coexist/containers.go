package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
)

var containersNoun = noun{
	about: "Containers: where they run, their state, and their output.",
	verbs: map[string]*verb{
		"list": {
			synopsis: "list containers with node, services, state, pid and restarts",
			example:  "coexist containers list\ncoexist containers list --node n1 --json",
		},
		"status": {
			synopsis: "show one container: what it runs, its state per version, and its last message",
			usage:    "<id>",
			args:     []string{"<id>"},
			about: "The message (the last output of a failed container) and env values are shown only to " +
				"operator and management tokens.",
			example: "coexist containers status greeter-1",
			run: func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
				ct, _, err := c.Containers().Info(ctx, pos[0], nil)
				if err != nil {
					return nil, nil, err
				}
				return ct, func(w io.Writer) error { return printContainer(w, ct, time.Now()) }, nil
			},
		},
	},
}

func init() {
	l := containersNoun.verbs["list"]
	var node *string
	l.flags = func(fs *flag.FlagSet) { node = fs.String("node", "", "only the containers of this node") }
	l.run = func(ctx context.Context, c *api.Client, _ []string, _ io.Writer) (any, func(io.Writer) error, error) {
		cts, _, err := c.Containers().List(ctx, *node, nil)
		if err != nil {
			return nil, nil, err
		}
		now := time.Now()
		return cts, func(w io.Writer) error {
			rows := make([][]string, 0, len(cts))
			for _, ct := range cts {
				state, pid, restarts, started := "pending", "-", "0", "-"
				if ct.Status != nil {
					state, restarts, started = ct.Status.State, strconv.Itoa(ct.Status.Restarts), ago(ct.Status.StartedAt, now)
					if ct.Status.PID > 0 {
						pid = strconv.Itoa(ct.Status.PID)
					}
				}
				if ct.Desired == api.DesiredDeleted {
					state += " (deleting)"
				}
				rows = append(rows, []string{ct.ID, ct.Node, serviceRefs(ct.Services), state, pid, started, restarts})
			}
			return table(w, "ID\tNODE\tSERVICES\tSTATE\tPID\tSTARTED\tRESTARTS", rows)
		}, nil
	}
}

func serviceRefs(refs []api.ServiceRef) string {
	s := make([]string, len(refs))
	for i, r := range refs {
		s[i] = r.String()
	}
	return strings.Join(s, ",")
}

func printContainer(w io.Writer, ct *api.Container, now time.Time) error {
	fmt.Fprintf(w, "ID:        %s\n", ct.ID)
	if ct.Name != "" {
		fmt.Fprintf(w, "Name:      %s\n", ct.Name)
	}
	fmt.Fprintf(w, "Node:      %s\nDesired:   %s\nDriver:    %s\nCommand:   %s\n", ct.Node, ct.Desired, ct.Driver,
		strings.TrimSpace(ct.Config.Command+" "+strings.Join(ct.Config.Args, " ")))
	if len(ct.Config.Env) > 0 {
		keys := make([]string, 0, len(ct.Config.Env))
		for k := range ct.Config.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "Env:       %s=%s\n", k, ct.Config.Env[k])
		}
	}
	st := ct.Status
	if st == nil {
		fmt.Fprintf(w, "State:     pending (not reported by its agent yet)\n\nServices:\n")
		st = &api.ContainerStatus{}
	} else {
		fmt.Fprintf(w, "State:     %s\nPID:       %s\nStarted:   %s\nRestarts:  %d\nEndpoint:  %s\nUpdated:   %s\n\nServices:\n",
			st.State, pidString(st.PID), ago(st.StartedAt, now), st.Restarts, orDash(st.Endpoint), ago(st.UpdatedAt, now))
	}
	var rows [][]string
	for _, ref := range ct.Services {
		state, inflight := "-", "-"
		for _, ss := range st.Services {
			if ss.Service == ref.Service && ss.Version == ref.Version {
				state, inflight = ss.State, strconv.Itoa(ss.Inflight)
			}
		}
		rows = append(rows, []string{"  " + ref.Service, ref.Version, state, inflight})
	}
	if err := table(w, "  SERVICE\tVERSION\tSTATE\tINFLIGHT", rows); err != nil {
		return err
	}
	if st.Message != "" {
		fmt.Fprintf(w, "\nMessage:\n  %s\n", strings.ReplaceAll(st.Message, "\n", "\n  "))
	}
	return nil
}

func pidString(pid int) string {
	if pid <= 0 {
		return "-"
	}
	return strconv.Itoa(pid)
}
