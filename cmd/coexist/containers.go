package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/gateway"
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
		"logs": {
			synopsis: "print a container's output (stdout and stderr in the order written)",
			usage:    "[--tail N] [--follow] [--node N] <id>",
			args:     []string{"<id>"},
			about: "The CLI finds the container's node through the registry and reads the output from that " +
				"node's agent; it needs an operator or management token, as output may hold secrets. The " +
				"output of a container that was removed is kept on its node (the last 1 MiB of each, up to " +
				"100 containers and 32 MiB per node) for a post-mortem: name its node with --node.",
			example: "coexist containers logs greeter-1 --tail 20\ncoexist containers logs greeter-1 --follow\n" +
				"coexist containers logs greeter-old --node n1",
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

func init() {
	l := containersNoun.verbs["logs"]
	var follow *bool
	var tail *int
	var nodeID *string
	l.flags = func(fs *flag.FlagSet) {
		nodeID = fs.String("node", "", "the container's node, for one the registry no longer holds (its kept output)")
		follow = fs.Bool("follow", false, "keep printing what the container writes, until interrupted")
		tail = fs.Int("tail", 100, "how many of the last lines to print first (0: all that is kept)")
	}
	l.noTimeout = func() bool { return *follow }
	l.stream = func(ctx context.Context, c *api.Client, cf *clientFlags, pos []string, stdout io.Writer, asJSON bool) error {
		if asJSON {
			return fmt.Errorf("--json: logs are text, the container's own output: %w", errUsage)
		}
		if *tail < 0 {
			return fmt.Errorf("--tail %d: want 0 or more lines: %w", *tail, errUsage)
		}
		return containerLogs(ctx, c, cf.cfg.Token, pos[0], *nodeID, *tail, *follow, stdout)
	}
}

// containerLogs finds the node of container id through the registry
// (unless nodeID names it) and copies its output from that node's agent
// (docs/api.md, agent endpoints).
func containerLogs(ctx context.Context, c *api.Client, token, id, nodeID string, tail int, follow bool, w io.Writer) error {
	if nodeID == "" {
		ct, _, err := c.Containers().Info(ctx, id, nil)
		if api.IsNotFound(err) {
			return fmt.Errorf("%w (for the kept output of a removed container, name its node with --node)", err)
		}
		if err != nil {
			return err
		}
		nodeID = ct.Node
	}
	n, _, err := c.Nodes().Info(ctx, nodeID, nil)
	if err != nil {
		return fmt.Errorf("node %s: %w", nodeID, err)
	}
	if n.Gateway == "" {
		return fmt.Errorf("node %s has no known gateway address", n.ID)
	}
	u := url.URL{Scheme: "http", Host: n.Gateway, Path: gateway.LogsPathPrefix + id + "/logs",
		RawQuery: url.Values{"tail": {strconv.Itoa(tail)}, "follow": {strconv.FormatBool(follow)}}.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("agent of node %s: %w", n.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		return &api.StatusError{Code: resp.StatusCode, Body: fmt.Sprintf("agent of node %s: %s", n.ID, e.Error)}
	}
	_, err = io.Copy(w, resp.Body)
	if err != nil && ctx.Err() != nil {
		return nil // interrupted while following
	}
	return err
}
