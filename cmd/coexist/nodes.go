package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/coexist-dev/coexist/api"
)

var nodesNoun = noun{
	about: "Nodes: the hosts that run `coexist agent`, their gateways and their containers.",
	verbs: map[string]*verb{
		"list": {
			synopsis: "list the nodes with their status, gateway and container count",
			example:  "coexist nodes list",
			run: func(ctx context.Context, c *api.Client, _ []string, _ io.Writer) (any, func(io.Writer) error, error) {
				nodes, _, err := c.Nodes().List(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				cts, _, err := c.Containers().List(ctx, "", nil)
				if err != nil {
					return nil, nil, fmt.Errorf("containers: %w", err)
				}
				per := map[string]int{}
				for _, ct := range cts {
					per[ct.Node]++
				}
				return nodes, func(w io.Writer) error {
					rows := make([][]string, 0, len(nodes))
					for _, n := range nodes {
						rows = append(rows, []string{n.ID, n.Status, n.Address, n.Gateway, fmt.Sprint(per[n.ID]), labels(n.Labels)})
					}
					return table(w, "ID\tSTATUS\tADDRESS\tGATEWAY\tCONTAINERS\tLABELS", rows)
				}, nil
			},
		},
		"show": {
			synopsis: "show one node and the containers on it",
			usage:    "<node>",
			args:     []string{"<node>"},
			example:  "coexist nodes show n1",
			run: func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
				n, _, err := c.Nodes().Info(ctx, pos[0], nil)
				if err != nil {
					return nil, nil, err
				}
				cts, _, err := c.Containers().List(ctx, n.ID, nil)
				if err != nil {
					return nil, nil, fmt.Errorf("containers: %w", err)
				}
				out := struct {
					*api.Node
					Containers []api.Container `json:"containers"`
				}{n, cts}
				return out, func(w io.Writer) error {
					fmt.Fprintf(w, "ID:       %s\nStatus:   %s\nAddress:  %s\nGateway:  %s\nLabels:   %s\n\nContainers:\n",
						n.ID, n.Status, n.Address, n.Gateway, labels(n.Labels))
					rows := make([][]string, 0, len(cts))
					for _, ct := range cts {
						state := "pending"
						if ct.Status != nil {
							state = ct.Status.State
						}
						rows = append(rows, []string{"  " + ct.ID, serviceRefs(ct.Services), state})
					}
					return table(w, "  ID\tSERVICES\tSTATE", rows)
				}, nil
			},
		},
	},
}

func labels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	s := make([]string, 0, len(m))
	for k, v := range m {
		s = append(s, k+"="+v)
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}
