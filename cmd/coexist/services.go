package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/coexist-dev/coexist/api"
)

var servicesNoun = noun{
	about: "Services and their versions: each version's client range, state and the containers that hold it.",
	verbs: map[string]*verb{
		"list": {
			synopsis: "list the services with their versions and states",
			example:  "coexist services list\ncoexist services list --json | jq '.[].name'",
			run: func(ctx context.Context, c *api.Client, _ []string, _ io.Writer) (any, func(io.Writer) error, error) {
				svcs, _, err := c.Services().List(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				return svcs, func(w io.Writer) error {
					rows := make([][]string, 0, len(svcs))
					for _, s := range svcs {
						var vs []string
						for _, v := range s.Versions {
							vs = append(vs, v.Version+" ("+v.State+")")
						}
						rows = append(rows, []string{s.Name, strings.Join(vs, ", ")})
					}
					return table(w, "SERVICE\tVERSIONS", rows)
				}, nil
			},
		},
		"show": {
			synopsis: "show one service: each version's range, state, containers and live clients",
			usage:    "<service>",
			args:     []string{"<service>"},
			about: "A container counts under each version it holds, with its node and observed state. LIVE CLIENTS " +
				"are the SDK cohorts (name@version (instances)) the registry's census routes to the version; " +
				"\"none\" marks a version no live client uses.",
			example: "coexist services show greeter",
			run: func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
				v, err := serviceView(ctx, c, pos[0])
				if err != nil {
					return nil, nil, err
				}
				return v, func(w io.Writer) error { return v.print(w) }, nil
			},
		},
		"purge": {
			synopsis: "remove a service whose every version is retired and held by no container",
			usage:    "<service>",
			args:     []string{"<service>"},
			about:    "Refused, saying why, while a version is not retired or a container holds one.",
			example:  "coexist services purge greeter",
			run: func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
				s, _, err := c.Services().Purge(ctx, pos[0], nil)
				if err != nil {
					return nil, nil, err
				}
				return s, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "purged service %s (%d versions)\n", s.Name, len(s.Versions))
					return err
				}, nil
			},
		},
	},
}

// versionView is one version of a service with the containers that hold it.
type versionView struct {
	api.ServiceVersion
	// CallsPerMinute sums the containers' calls per minute, as reported.
	CallsPerMinute int            `json:"calls_per_minute"`
	Containers     []containerRef `json:"containers"`
	// Cohorts are the live SDK cohorts routed to it, when the leader's
	// census answered; nil for a retired version.
	Cohorts []api.Cohort `json:"cohorts,omitempty"`
}

// containerRef is a container as a version's row shows it.
type containerRef struct {
	ID    string `json:"id"`
	Node  string `json:"node"`
	State string `json:"state"`
	// Version is the container's own state for this version: serving,
	// draining or drained.
	Version        string `json:"version_state,omitempty"`
	Inflight       int    `json:"inflight"`
	CallsPerMinute int    `json:"calls_per_minute"`
}

type serviceDetail struct {
	Name     string        `json:"name"`
	Versions []versionView `json:"versions"`
	// Census says whether the leader's census answered (cohorts are known).
	Census bool `json:"census"`
}

// serviceView reads a service and the containers that hold its versions.
func serviceView(ctx context.Context, c *api.Client, name string) (*serviceDetail, error) {
	s, _, err := c.Services().Info(ctx, name, nil)
	if err != nil {
		return nil, err
	}
	cts, _, err := c.Containers().List(ctx, "", nil)
	if err != nil {
		return nil, fmt.Errorf("containers: %w", err)
	}
	d := &serviceDetail{Name: s.Name, Versions: versionsWithContainers(s, cts), Census: s.Served != nil}
	for i := range d.Versions {
		d.Versions[i].Cohorts = s.Served[d.Versions[i].Version]
	}
	return d, nil
}

// versionsWithContainers lists s's versions, each with the containers of
// cts that hold it.
func versionsWithContainers(s *api.Service, cts []api.Container) []versionView {
	out := make([]versionView, len(s.Versions))
	for i, v := range s.Versions {
		out[i] = versionView{ServiceVersion: v, Containers: []containerRef{}}
	}
	idx := map[string]int{}
	for i, v := range s.Versions {
		idx[v.Version] = i
	}
	for _, ct := range cts {
		for _, ref := range ct.Services {
			i, ok := idx[ref.Version]
			if ref.Service != s.Name || !ok {
				continue
			}
			r := containerRef{ID: ct.ID, Node: ct.Node, State: "pending"}
			if ct.Desired == api.DesiredDeleted {
				r.State = "deleting"
			}
			if ct.Status != nil {
				r.State = ct.Status.State
				for _, ss := range ct.Status.Services {
					if ss.Service == ref.Service && ss.Version == ref.Version {
						r.Version, r.Inflight, r.CallsPerMinute = ss.State, ss.Inflight, ss.CallsPerMinute
					}
				}
			}
			out[i].Containers = append(out[i].Containers, r)
			out[i].CallsPerMinute += r.CallsPerMinute
		}
	}
	for i := range out {
		sort.Slice(out[i].Containers, func(a, b int) bool { return out[i].Containers[a].ID < out[i].Containers[b].ID })
	}
	return out
}

func (d *serviceDetail) print(w io.Writer) error {
	fmt.Fprintf(w, "Service: %s\n\n", d.Name)
	var rows [][]string
	for _, v := range d.Versions {
		var cs []string
		for _, c := range v.Containers {
			s := c.ID + "@" + c.Node + " " + c.State
			if c.Version != "" && c.Version != api.ServiceServing {
				s += "/" + c.Version
			}
			if c.Inflight > 0 {
				s += " (" + strconv.Itoa(c.Inflight) + " in flight)"
			}
			cs = append(cs, s)
		}
		rows = append(rows, []string{v.Version, v.State, v.Clients, strconv.Itoa(v.CallsPerMinute), orDash(strings.Join(cs, ", ")), d.liveClients(&v)})
	}
	return table(w, "VERSION\tSTATE\tCLIENTS\tCALLS/MIN\tCONTAINERS\tLIVE CLIENTS", rows)
}

// liveClients is the cohorts a version serves: "none" for a version no live
// client uses, "-" when the census is not known or the version is retired.
func (d *serviceDetail) liveClients(v *versionView) string {
	if !d.Census || v.State == api.VersionRetired {
		return "-"
	}
	if len(v.Cohorts) == 0 {
		return "none"
	}
	cs := make([]string, len(v.Cohorts))
	for i, c := range v.Cohorts {
		cs[i] = fmt.Sprintf("%s@%s (%d)", c.Name, c.Version, c.Instances)
	}
	return strings.Join(cs, ", ")
}

var versionsNoun = noun{
	about: "Declare, retire and purge the versions of a service (docs/design.md §2, §5).",
	verbs: map[string]*verb{
		"declare": {
			synopsis: "declare a service version and the client versions it serves",
			usage:    "--clients RANGE <service> <version>",
			args:     []string{"<service>", "<version>"},
			about: "Declaring it again with the same range changes nothing; declaring a draining version cancels " +
				"the drain; declaring a retired one is a rollback.",
			example: "coexist versions declare greeter 2.0.0 --clients '>= 2.0, < 3.0'",
			// flags and run: see init, they share the flags' values.
		},
		"retire": {
			synopsis: "retire a service version: it drains, then its containers stop",
			usage:    "<service> <version>",
			args:     []string{"<service>", "<version>"},
			about: "The version becomes draining at once: clients stop choosing it where they have another " +
				"candidate; it is retired once its containers have drained or timed out.",
			example: "coexist versions retire greeter 1.0.0",
			run: func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
				v, _, err := c.Services().Retire(ctx, pos[0], pos[1], nil)
				return versionDone(v, "retiring", err)
			},
		},
		"purge": {
			synopsis: "remove a retired version that no container holds",
			usage:    "<service> <version>",
			args:     []string{"<service>", "<version>"},
			about:    "Refused, saying why, while the version is not retired or a container holds it.",
			example:  "coexist versions purge greeter 1.0.0",
			run: func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
				v, _, err := c.Services().PurgeVersion(ctx, pos[0], pos[1], nil)
				return versionDone(v, "purged", err)
			},
		},
	},
}

func init() {
	// declare's run reads the values its flags function defines.
	d := versionsNoun.verbs["declare"]
	var clients, desc *string
	d.flags = func(fs *flag.FlagSet) {
		clients = fs.String("clients", "", "the range of client versions this version serves (required), e.g. '>= 1.0, < 2.0'")
		desc = fs.String("description", "", "a note shown with the version")
	}
	d.run = func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
		if strings.TrimSpace(*clients) == "" {
			return nil, nil, fmt.Errorf("--clients is required, e.g. --clients '>= 1.0, < 2.0': %w", errUsage)
		}
		v, _, err := c.Services().Declare(ctx, pos[0], pos[1], api.VersionRequest{Clients: *clients, Description: *desc}, nil)
		return versionDone(v, "declared", err)
	}
}

// versionDone is the answer of a write to one version.
func versionDone(v *api.ServiceVersion, what string, err error) (any, func(io.Writer) error, error) {
	if err != nil {
		return nil, nil, err
	}
	return v, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s %s@%s: now %s, clients %s\n", what, v.Service, v.Version, v.State, v.Clients)
		return err
	}, nil
}

// printVersions prints, per service, each version with its state, range
// and the containers behind it (for `coexist status`).
func printVersions(w io.Writer, services []api.Service, containers []api.Container) error {
	for i := range services {
		fmt.Fprintln(w)
		d := serviceDetail{Name: services[i].Name, Versions: versionsWithContainers(&services[i], containers)}
		if err := d.print(w); err != nil {
			return err
		}
	}
	return nil
}
