package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/coexist-dev/coexist/api"
)

var aclTokensNoun = noun{
	about: "ACL tokens: management, operator (desired state), agent (one node) and read (docs/design.md §5).",
	verbs: map[string]*verb{
		"create": {
			synopsis: "create a token; its secret is printed once, here only",
			usage:    "--role ROLE [--node N] [--description D]",
			about:    "Needs a management token. --node is required with, and only allowed with, --role agent.",
			example:  "coexist acl tokens create --role read --description 'dashboard'",
		},
		"list": {
			synopsis: "list the tokens, without their secrets",
			example:  "coexist acl tokens list",
			run: func(ctx context.Context, c *api.Client, _ []string, _ io.Writer) (any, func(io.Writer) error, error) {
				toks, _, err := c.ACL().ListTokens(ctx, nil)
				if err != nil {
					return nil, nil, err
				}
				return toks, func(w io.Writer) error {
					rows := make([][]string, 0, len(toks))
					for _, t := range toks {
						rows = append(rows, []string{t.AccessorID, t.Role, orDash(t.Node), orDash(t.Description)})
					}
					return table(w, "ACCESSOR\tROLE\tNODE\tDESCRIPTION", rows)
				}, nil
			},
		},
		"revoke": {
			synopsis: "revoke a token by its accessor id",
			usage:    "<accessor-id>",
			args:     []string{"<accessor-id>"},
			example:  "coexist acl tokens revoke 6f1c2b7e-...",
			run: func(ctx context.Context, c *api.Client, pos []string, _ io.Writer) (any, func(io.Writer) error, error) {
				if _, err := c.ACL().DeleteToken(ctx, pos[0], nil); err != nil {
					return nil, nil, err
				}
				out := map[string]string{"accessor_id": pos[0], "revoked": "true"}
				return out, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "revoked token %s\n", pos[0])
					return err
				}, nil
			},
		},
	},
}

func init() {
	cr := aclTokensNoun.verbs["create"]
	var req api.TokenRequest
	cr.flags = func(fs *flag.FlagSet) {
		fs.StringVar(&req.Role, "role", "", "management, operator, agent or read (required)")
		fs.StringVar(&req.Node, "node", "", "the node of an agent token")
		fs.StringVar(&req.Description, "description", "", "what the token is for")
	}
	cr.run = func(ctx context.Context, c *api.Client, _ []string, _ io.Writer) (any, func(io.Writer) error, error) {
		if req.Role == "" {
			return nil, nil, fmt.Errorf("--role is required: management, operator, agent or read: %w", errUsage)
		}
		t, _, err := c.ACL().CreateToken(ctx, req, nil)
		if err != nil {
			return nil, nil, err
		}
		return t, func(w io.Writer) error {
			_, err := fmt.Fprintf(w, "AccessorID: %s\nSecretID:   %s\nRole:       %s\n\nThe secret is shown only now; keep it in a file and pass --token-file.\n",
				t.AccessorID, t.SecretID, t.Role)
			return err
		}, nil
	}
}

// runACL dispatches `coexist acl tokens <verb>`.
func runACL(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "tokens" {
		return runNoun("acl tokens", aclTokensNoun, args[1:], stdout, stderr)
	}
	acl := noun{about: "Access control.", verbs: map[string]*verb{"tokens": {synopsis: "create, list and revoke tokens", example: "coexist acl tokens list"}}}
	return runNoun("acl", acl, args, stdout, stderr)
}
