package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// TestEveryCommandHelp: every command and subcommand answers --help with a
// usage line, a description and an example, and exits 0.
func TestEveryCommandHelp(t *testing.T) {
	var cmds [][]string
	for name := range commands {
		cmds = append(cmds, []string{name})
	}
	for name, n := range map[string]noun{"services": servicesNoun, "versions": versionsNoun,
		"containers": containersNoun, "nodes": nodesNoun, "acl tokens": aclTokensNoun} {
		for v := range n.verbs {
			cmds = append(cmds, append(strings.Fields(name), v))
		}
	}
	sort.Slice(cmds, func(i, j int) bool { return strings.Join(cmds[i], " ") < strings.Join(cmds[j], " ") })
	for _, c := range cmds {
		t.Run(strings.Join(c, "_"), func(t *testing.T) {
			code, _, stderr := runBinary(t, nil, append(c, "--help")...)
			if code != 0 || !strings.Contains(stderr, "Usage:") || !strings.Contains(stderr, "Example") {
				t.Fatalf("coexist %s --help: exit %d, want 0 with a usage line and an example:\n%s", strings.Join(c, " "), code, stderr)
			}
		})
	}
}

// TestFleetCLIOnRealProcesses drives the operator's nouns against a real
// server and agent with a real greeter container: tables by default,
// --json for scripts, one line and exit 2 for bad usage, exit 1 with the
// registry's reason for a refused change.
func TestFleetCLIOnRealProcesses(t *testing.T) {
	skipShort(t)
	f := newFleet(t)
	f.startAgent("n1")
	env := []string{"COEXIST_ADDR=" + f.server.url(), "COEXIST_TOKEN=" + testToken}
	cli := func(wantCode int, args ...string) string {
		t.Helper()
		code, stdout, stderr := runBinary(t, env, args...)
		if code != wantCode {
			t.Fatalf("coexist %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		if code != 0 {
			if n := strings.Count(strings.TrimSpace(stderr), "\n"); n > 1 {
				t.Errorf("coexist %s: %d lines of error, want one (and a hint):\n%s", strings.Join(args, " "), n+1, stderr)
			}
			return stderr
		}
		return stdout
	}
	contains := func(what, out string, want ...string) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s does not say %q:\n%s", what, w, out)
			}
		}
	}

	contains("declare without --clients", cli(2, "versions", "declare", "greeter", "1.0.0"), "--clients is required")
	contains("declare with too few arguments", cli(2, "versions", "declare", "greeter", "--clients", ">= 1.0"), "missing <version>")
	contains("declare", cli(0, "versions", "declare", "greeter", "1.0.0", "--clients", ">= 1.0, < 2.0"),
		"declared greeter@1.0.0: now active, clients >= 1.0, < 2.0")
	contains("declare a bad version", cli(1, "versions", "declare", "greeter", "v2", "--clients", ">= 2.0"),
		`version: "v2" is not canonical`)
	f.greeter("g1", "n1", "1.0.0", map[string]string{"GREETING": "hello"})
	f.waitState("g1", api.ContainerRunning)

	contains("services list", cli(0, "services", "list"), "SERVICE", "greeter", "1.0.0 (active)")
	var detail serviceDetail
	if err := json.Unmarshal([]byte(cli(0, "services", "show", "greeter", "--json")), &detail); err != nil {
		t.Fatal(err)
	}
	if len(detail.Versions) != 1 || len(detail.Versions[0].Containers) != 1 ||
		detail.Versions[0].Containers[0] != (containerRef{ID: "g1", Node: "n1", State: api.ContainerRunning, Version: api.ServiceServing}) {
		t.Errorf("services show greeter --json: %+v", detail)
	}
	contains("status", cli(0, "status"), "Service: greeter", "1.0.0", "active", "g1@n1 running")
	contains("services show", cli(0, "services", "show", "greeter"), "CALLS/MIN", "1.0.0", "active", ">= 1.0, < 2.0", "g1@n1 running", "LIVE CLIENTS", "none")
	contains("services show of an unknown service", cli(1, "services", "show", "nope"), "coexist services show:", "nope")

	contains("containers list", cli(0, "containers", "list", "--node", "n1"), "g1", "n1", "greeter@1.0.0", "running")
	if out := cli(0, "containers", "list", "--node", "n2"); strings.Contains(out, "g1") {
		t.Errorf("containers list --node n2 lists g1:\n%s", out)
	}
	var cts []api.Container
	if err := json.Unmarshal([]byte(cli(0, "containers", "list", "--json")), &cts); err != nil || len(cts) != 1 || cts[0].Status.PID == 0 {
		t.Errorf("containers list --json: %+v, %v", cts, err)
	}
	contains("containers status", cli(0, "containers", "status", "g1"), "ID:        g1", "State:     running",
		"Env:       GREETING=hello", "greeter", "serving")

	contains("nodes list", cli(0, "nodes", "list"), "n1", "ready", f.agents["n1"].gateway)
	contains("nodes show", cli(0, "nodes", "show", "n1"), "Status:   ready", "g1", "greeter@1.0.0")

	var tok api.Token
	if err := json.Unmarshal([]byte(cli(0, "acl", "tokens", "create", "--role", "read", "--description", "dash", "--json")), &tok); err != nil ||
		tok.SecretID == "" || tok.Role != api.RoleRead {
		t.Fatalf("acl tokens create --json: %+v, %v", tok, err)
	}
	contains("acl tokens create without a role", cli(2, "acl", "tokens", "create"), "--role is required")
	contains("acl tokens list", cli(0, "acl", "tokens", "list"), tok.AccessorID, "read", "dash")
	// A read token may read, and may not write.
	code, stdout, stderr := runBinary(t, []string{"COEXIST_ADDR=" + f.server.url(), "COEXIST_TOKEN=" + tok.SecretID}, "containers", "status", "g1")
	if code != 0 || strings.Contains(stdout, "GREETING=hello") {
		t.Errorf("containers status with a read token: exit %d, env shown: %v\n%s%s", code, strings.Contains(stdout, "hello"), stdout, stderr)
	}
	code, _, stderr = runBinary(t, []string{"COEXIST_ADDR=" + f.server.url(), "COEXIST_TOKEN=" + tok.SecretID}, "versions", "retire", "greeter", "1.0.0")
	if code != 1 || !strings.Contains(stderr, "hint: set COEXIST_TOKEN") {
		t.Errorf("retire with a read token: exit %d, %s", code, stderr)
	}
	contains("acl tokens revoke", cli(0, "acl", "tokens", "revoke", tok.AccessorID), "revoked token "+tok.AccessorID)
	if out := cli(0, "acl", "tokens", "list"); strings.Contains(out, tok.AccessorID) {
		t.Errorf("a revoked token is still listed:\n%s", out)
	}

	contains("retire", cli(0, "versions", "retire", "greeter", "1.0.0"), "retiring greeter@1.0.0: now draining")
	f.waitVersion("greeter", "1.0.0", api.VersionRetired)
	contains("purge of a held version", cli(1, "versions", "purge", "greeter", "1.0.0"), "held by container g1")
	contains("version", cli(0, "version"), "coexist ")
	contains("--version", cli(0, "--version"), "coexist ")
}

// TestBashCompletion sources `coexist completion bash` in a real bash and
// completes a command, a noun's verbs and acl tokens' verbs.
func TestBashCompletion(t *testing.T) {
	code, script, stderr := runBinary(t, nil, "completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: exit %d, %s", code, stderr)
	}
	for words, want := range map[string]string{
		"coexist contai":        "containers",
		"coexist containers l":  "list logs",
		"coexist acl tokens ''": "create list revoke",
		"coexist versions ''":   "declare purge retire",
	} {
		n := len(strings.Fields(words)) - 1
		cmd := exec.Command("bash", "-c", script+"\nCOMP_WORDS=("+words+"); COMP_CWORD="+strconv.Itoa(n)+`; _coexist; echo "${COMPREPLY[@]}"`)
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%s<TAB>: %q, %v; want %q", words, out, err, want)
		}
	}
	if code, _, _ := runBinary(t, nil, "completion", "fish"); code != 2 {
		t.Errorf("completion fish: exit %d, want 2", code)
	}
}

// TestZshCompletion runs the zsh script in zsh (installed by the Makefile),
// with compadd and compdef standing in for the completion system's.
func TestZshCompletion(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Fatal("no zsh on PATH: run `make test` (it installs Debian's zsh)")
	}
	code, script, stderr := runBinary(t, nil, "completion", "zsh")
	if code != 0 {
		t.Fatalf("completion zsh: exit %d, %s", code, stderr)
	}
	for line, want := range map[string]string{
		"coexist contai":            "acl agent call census completion containers image load nodes route server services sim status version versions",
		"coexist containers l":      "list logs status",
		"coexist acl tokens x":      "create list revoke",
		"coexist --json versions x": "declare purge retire",
	} {
		stub := "compdef() { :; }\ncompadd() { shift; echo \"$@\"; }\n" + script +
			"\nwords=(" + line + "); CURRENT=${#words}; _coexist; print -r -- PATH=$PATH"
		out, err := exec.Command(zsh, "-f", "-c", stub).CombinedOutput()
		got, rest, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if err != nil || got != want {
			t.Errorf("zsh %s<TAB>: %q, %v; want %q", line, out, err, want)
		}
		if !strings.HasPrefix(rest, "PATH=") || strings.TrimPrefix(rest, "PATH=") != os.Getenv("PATH") {
			t.Errorf("zsh %s<TAB> changed PATH: %q", line, rest)
		}
	}
}
