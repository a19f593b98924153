package main

import (
	"bytes"
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// runBinary runs the coexist binary (this test binary acting as it, see
// TestMain) with args and extra environment, and returns its exit code and
// output.
func runBinary(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "COEXIST_TEST_MAIN=1"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stdout.String(), stderr.String()
}

// TestSecretsNeverPrinted: with COEXIST_TOKEN and COEXIST_MANAGEMENT_TOKEN
// set, or a token on the command line, no command's --help or usage error
// prints the secret; the help says where it comes from instead.
func TestSecretsNeverPrinted(t *testing.T) {
	const token, mgmt = "tok-secret-5f3a9c1e7b2d4", "mgmt-secret-8e1d2c3b4a5f6"
	env := []string{"COEXIST_TOKEN=" + token, "COEXIST_MANAGEMENT_TOKEN=" + mgmt}
	for _, tc := range []struct {
		cmd      string
		from     string // what the help must say instead of the value
		badUsage []string
	}{
		{"server", "(from COEXIST_MANAGEMENT_TOKEN)", []string{"--no-such-flag"}},
		{"server", "", []string{"--data-dir"}}, // a flag without its value
		{"agent", "(from COEXIST_TOKEN)", []string{"--no-such-flag"}},
		{"agent", "", []string{"--port-range", "x", "--dev"}},
		{"status", "(from COEXIST_TOKEN)", []string{"--timeout", "soon"}},
		{"call", "(from COEXIST_TOKEN)", []string{"--client", "web@1.0.0"}},
		{"route", "(from COEXIST_TOKEN)", []string{"greeter"}},
		{"load", "(from COEXIST_TOKEN)", []string{"--rate", "0", "--client", "web@1.0.0", "greeter", "/"}},
	} {
		t.Run(tc.cmd+" "+strings.Join(tc.badUsage, " "), func(t *testing.T) {
			check := func(what string, wantCode int, args ...string) string {
				code, stdout, stderr := runBinary(t, env, append([]string{tc.cmd}, args...)...)
				if code != wantCode {
					t.Errorf("%s: exit %d, want %d; stderr:\n%s", what, code, wantCode, stderr)
				}
				for _, s := range []string{token, mgmt} {
					if strings.Contains(stdout+stderr, s) {
						t.Errorf("%s prints a secret:\n%s%s", what, stdout, stderr)
					}
				}
				return stderr
			}
			if help := check("--help", 0, "--help"); tc.from != "" && !strings.Contains(help, tc.from) {
				t.Errorf("--help does not say %q:\n%s", tc.from, help)
			}
			check("usage error", 2, tc.badUsage...)
			// A secret on the command line is not echoed by a usage error either.
			flagName := "--token"
			if tc.cmd == "server" {
				flagName = "--management-token"
			}
			check("usage error with "+flagName, 2, append([]string{flagName, token}, tc.badUsage...)...)
		})
	}
}

// TestTokenFlagSources: a client command takes its token from --token-file,
// from COEXIST_TOKEN, or from --token with a warning; the registry sees it.
func TestTokenFlagSources(t *testing.T) {
	const token = "file-token-0123456789abcdef"
	var mu sync.Mutex
	var seen []string
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"error":"permission denied"}`))
	}))
	t.Cleanup(reg.Close)
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("  "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lastAuth := func() string {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) == 0 {
			return ""
		}
		return seen[len(seen)-1]
	}
	const warning = "warning: --token on the command line is visible to every local user"
	for _, tc := range []struct {
		name        string
		env, args   []string
		wantWarning bool
	}{
		{"file", []string{"COEXIST_TOKEN=other-token-from-env"}, []string{"--token-file", file}, false},
		{"env", []string{"COEXIST_TOKEN=" + token}, nil, false},
		{"argv", nil, []string{"--token", token}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"status", "--addr", reg.URL, "--timeout", "5s"}, tc.args...)
			code, _, stderr := runBinary(t, tc.env, args...)
			if code != 1 || !strings.Contains(stderr, "permission denied") {
				t.Fatalf("exit %d, stderr %q; want 1 and the registry's refusal", code, stderr)
			}
			if got := lastAuth(); got != "Bearer "+token {
				t.Errorf("the registry got Authorization %q, want the token", got)
			}
			if got := strings.Contains(stderr, warning); got != tc.wantWarning {
				t.Errorf("warning printed: %v, want %v; stderr:\n%s", got, tc.wantWarning, stderr)
			}
			if strings.Count(stderr, "warning:") > 1 {
				t.Errorf("more than one warning line:\n%s", stderr)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--token", token, "--token-file", file}, "--token and --token-file exclude each other"},
		{[]string{"--token-file", filepath.Join(t.TempDir(), "missing")}, "--token-file: open "},
		{[]string{"--token-file", os.DevNull}, "the file is empty"},
	} {
		code, _, stderr := runBinary(t, nil, append([]string{"status", "--addr", reg.URL}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("status %q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestServerAndAgentTokenFiles runs a real server with
// --management-token-file and a real agent with --token-file (an agent
// token for its node): the agent registers, neither warns, and neither
// process's command line holds a secret.
func TestServerAndAgentTokenFiles(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	write := func(name, v string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := &serverProc{proc: newProc("s1"), httpAddr: freeAddr(t), raftAddr: freeAddr(t), dataDir: filepath.Join(dir, "s1")}
	t.Cleanup(s.kill)
	s.run(t, "server", "--node-id", "s1", "--http-addr", s.httpAddr, "--raft-addr", s.raftAddr, "--data-dir", s.dataDir,
		"--bootstrap", "--management-token-file", write("management", testToken))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of the server:\n%s", s.logs())
		}
	})
	c := s.client(t) // with testToken: the server took it from the file
	waitFor(t, 20*time.Second, "the server to lead", func() bool {
		_, _, err := c.Nodes().List(context.Background(), nil)
		return err == nil
	})
	agentToken, _, err := c.ACL().CreateToken(context.Background(), api.TokenRequest{Role: api.RoleAgent, Node: "n1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProc{proc: newProc("n1"), gateway: freeAddr(t), dataDir: filepath.Join(dir, "n1")}
	t.Cleanup(a.kill)
	a.run(t, "agent", "--node-id", "n1", "--registry", s.url(), "--token-file", write("agent", agentToken.SecretID),
		"--gateway-addr", a.gateway, "--data-dir", a.dataDir, "--port-range", portWindow())
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- log of the agent:\n%s", a.logs())
		}
	})
	waitFor(t, 20*time.Second, "node n1 to register", func() bool {
		n, _, err := c.Nodes().Info(context.Background(), "n1", nil)
		return err == nil && n.Status == api.NodeReady
	})
	for _, p := range []*proc{&s.proc, &a.proc} {
		cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "cmdline"))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{testToken, agentToken.SecretID} {
			if bytes.Contains(cmdline, []byte(secret)) {
				t.Errorf("%s: /proc/<pid>/cmdline holds a secret", p.id)
			}
			if strings.Contains(p.logs(), secret) {
				t.Errorf("%s: the log holds a secret", p.id)
			}
		}
		if strings.Contains(p.logs(), "warning: --") {
			t.Errorf("%s warns about a token on the command line:\n%s", p.id, p.logs())
		}
	}
}

// TestFlagsAfterPositionals: flags are read before and after positional
// arguments; "--" ends them; a missing or extra argument is named.
func TestFlagsAfterPositionals(t *testing.T) {
	t.Run("parseArgs", func(t *testing.T) {
		for _, tc := range []struct {
			args    []string
			pos     []string
			n       int
			s       string
			b       bool
			wantErr bool
		}{
			{args: []string{"a", "--n", "1", "b"}, pos: []string{"a", "b"}, n: 1},
			{args: []string{"--n=2", "a", "b", "--b"}, pos: []string{"a", "b"}, n: 2, b: true},
			{args: []string{"--", "-x", "--n", "3"}, pos: []string{"-x", "--n", "3"}},
			{args: []string{"a", "--s", "--", "b", "--n", "4"}, pos: []string{"a", "b"}, s: "--", n: 4},
			{args: []string{"--b", "--", "--n", "5"}, pos: []string{"--n", "5"}, b: true},
			{args: []string{"a", "--nope"}, wantErr: true},
		} {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(&bytes.Buffer{})
			n, s, b := fs.Int("n", 0, ""), fs.String("s", "", ""), fs.Bool("b", false, "")
			pos, code, ok := parseArgs(fs, tc.args)
			if tc.wantErr {
				if ok || code != 2 {
					t.Errorf("%q: ok %v, code %d; want a usage error", tc.args, ok, code)
				}
				continue
			}
			if !ok || !slices.Equal(pos, tc.pos) || *n != tc.n || *s != tc.s || *b != tc.b {
				t.Errorf("%q: pos %q n %d s %q b %v ok %v; want %q %d %q %v", tc.args, pos, *n, *s, *b, ok, tc.pos, tc.n, tc.s, tc.b)
			}
		}
	})

	f := newFakeRoutes(t)
	// Flags after the positional arguments take effect.
	var out, errOut bytes.Buffer
	code := run([]string{"call", "greeter", "/hello", "--client", "web@1.3.0", "--addr", f.registry.URL,
		"--token", callTestToken, "--timeout", "5s"}, &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "served-by: greeter@1.5.0 c2") {
		t.Fatalf("call with flags last: exit %d, %q %s", code, out.String(), errOut.String())
	}
	code, outs, errs := f.run("route", "greeter", "--require", "greeter=< 1.5", "--client", "web@1.3.0")
	if code != 0 || !strings.Contains(outs, "version:    1.2.0") {
		t.Fatalf("route with flags last: exit %d, %q %s", code, outs, errs)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--timeout", "1s", "extra", "--addr", f.registry.URL}, `coexist status: unexpected argument "extra": status takes flags only`},
		{[]string{"server", "--data-dir", t.TempDir(), "extra"}, `coexist server: unexpected argument "extra"`},
		{[]string{"agent", "extra", "--dev"}, `coexist agent: unexpected argument "extra"`},
		{[]string{"call", "--client", "web@1.0.0"}, "coexist call: missing <service>"},
		{[]string{"call", "--client", "web@1.0.0", "greeter", "/a", "/b"}, `coexist call: unexpected argument "/b" after <service> [path]`},
		{[]string{"route", "--client", "web@1.0.0"}, "coexist route: missing <service>"},
		{[]string{"load", "greeter", "--client", "web@1.0.0"}, "coexist load: missing <path>"},
		{[]string{"load", "greeter", "/"}, "coexist load: --client name@version is required"},
		{[]string{"load", "greeter", "/", "--client", "web"}, `coexist load: --client "web": want name@version`},
		{[]string{"sim", "run", "--seed", "2"}, "coexist sim run: missing <scenario.hcl>"},
		{[]string{"sim", "validate"}, "coexist sim validate: missing <scenario.hcl>"},
		{[]string{"sim", "bench", "x"}, `coexist sim bench: unexpected argument "x"`},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("coexist %q: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}

// TestLoadSteadyRate: `coexist load --rate 50 --workers 8` spreads its calls
// evenly over time instead of sending them in bursts of 8.
func TestLoadSteadyRate(t *testing.T) {
	var mu sync.Mutex
	var arrivals []time.Time
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrivals = append(arrivals, time.Now())
		mu.Unlock()
		w.Header().Set(api.HeaderServedBy, "greeter@1.0.0 c1")
	}))
	t.Cleanup(gw.Close)
	var out, errOut bytes.Buffer
	// Flags after the positional arguments, too.
	code := run([]string{"load", "greeter", "/hello", "--gateway", strings.TrimPrefix(gw.URL, "http://"),
		"--client", "web@1.0.0", "--rate", "50", "--workers", "8", "--duration", "1s", "--quiet"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out.String(), errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if n := len(arrivals); n < 35 || n > 55 {
		t.Fatalf("%d calls in 1s at 50/s", n)
	}
	// 50/s is a call every 20ms. Calls closer than 5ms are bunched: a few
	// may be, from scheduling noise; bursts of 8 make 7 of every 8.
	bunched := 0
	for i := 1; i < len(arrivals); i++ {
		if arrivals[i].Sub(arrivals[i-1]) < 5*time.Millisecond {
			bunched++
		}
	}
	if bunched > len(arrivals)/4 {
		t.Errorf("%d of %d calls came within 5ms of the one before: not a steady rate", bunched, len(arrivals))
	}
}
