package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/coexist-dev/coexist/api"
)

// The acceptance tests (TF_ACC=1) run the real thing: TestMain builds
// cmd/coexist and examples/greeter, starts `coexist agent --dev` (a
// one-server registry, a node agent and its gateway in one process) on free
// loopback ports, and each test drives a real Terraform CLI against it
// through this provider, served in-process.
//
// Container ports: the agent hands out 22900-22999, which no other package
// of the module uses (node/driver takes 21000-21999, cmd/coexist 23000-23999, client
// takes 22000-22899), so that packages tested in parallel do not meet.
//
// Tests that call the greeter through the gateway use the service name
// "greeter" (the greeter only serves /greeter/...); they run one at a time.
// The others each use service names of their own and run in parallel.

const (
	accToken     = "provider-acc-management-token-0123"
	accNode      = "acc-node"
	accPortRange = "22900-22999"
)

// accEnv is the registry and agent the acceptance tests share.
type accEnv struct {
	addr    string // registry URL
	gateway string // the node's gateway, host:port
	greeter string // path of the greeter binary
	coexist string // path of the coexist binary
	dir     string // the run's scratch directory
	client  *api.Client
	logPath string
}

var acc *accEnv

// protoV6Providers serves this provider in-process to the Terraform CLI.
var protoV6Providers = map[string]func() (tfprotov6.ProviderServer, error){
	"coexist": providerserver.NewProtocol6WithError(New("test")()),
}

func TestMain(m *testing.M) {
	if os.Getenv("TF_ACC") == "" {
		os.Exit(m.Run())
	}
	os.Exit(runAcceptance(m))
}

func runAcceptance(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coexist-provider-acc-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance tests:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := setTerraformEnv(dir); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance tests:", err)
		return 1
	}
	coexistBin, greeterBin, err := buildBinaries(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance tests: build:", err)
		return 1
	}
	stop, err := startAgent(dir, coexistBin, greeterBin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "acceptance tests: start agent:", err)
		return 1
	}
	code := m.Run()
	if err := stop(); err != nil {
		fmt.Fprintln(os.Stderr, "acceptance tests: stop agent:", err)
		if code == 0 {
			code = 1
		}
	}
	if code != 0 {
		dumpLog(acc.logPath)
	}
	return code
}

// setTerraformEnv points terraform-plugin-testing at a real CLI: the one in
// TF_ACC_TERRAFORM_PATH, else terraform or tofu on PATH, else the tofu that
// `make tools` builds into $(go env GOPATH)/bin.
func setTerraformEnv(dir string) error {
	if os.Getenv("TF_ACC_TERRAFORM_PATH") == "" {
		cli := ""
		for _, name := range []string{"terraform", "tofu"} {
			if p, err := exec.LookPath(name); err == nil {
				cli = p
				break
			}
		}
		if cli == "" {
			gopath, err := exec.Command("go", "env", "GOPATH").Output()
			if err == nil {
				p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "tofu")
				if _, err := os.Stat(p); err == nil {
					cli = p
				}
			}
		}
		if cli == "" {
			return errors.New("no terraform or tofu found: run `make tools` (builds OpenTofu) or set TF_ACC_TERRAFORM_PATH")
		}
		os.Setenv("TF_ACC_TERRAFORM_PATH", cli)
	}
	if os.Getenv("TF_ACC_PROVIDER_NAMESPACE") == "" {
		os.Setenv("TF_ACC_PROVIDER_NAMESPACE", "hashicorp")
	}
	// A CLI config that does not exist makes OpenTofu print a warning that
	// breaks `tofu version -json`: give it an empty one.
	if f := os.Getenv("TF_CLI_CONFIG_FILE"); f == "" || !fileExists(f) {
		rc := filepath.Join(dir, "empty.tfrc")
		if err := os.WriteFile(rc, nil, 0o644); err != nil {
			return err
		}
		os.Setenv("TF_CLI_CONFIG_FILE", rc)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// buildBinaries builds cmd/coexist and examples/greeter into dir, or takes
// them from COEXIST_BIN_DIR when set.
func buildBinaries(dir string) (coexistBin, greeterBin string, err error) {
	if d := os.Getenv("COEXIST_BIN_DIR"); d != "" {
		return filepath.Join(d, "coexist"), filepath.Join(d, "greeter"), nil
	}
	coexistBin, greeterBin = filepath.Join(dir, "coexist"), filepath.Join(dir, "greeter")
	for pkg, out := range map[string]string{"./cmd/coexist": coexistBin, "./examples/greeter": greeterBin} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Dir = ".." // the module root
		if b, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	return coexistBin, greeterBin, nil
}

// freeAddr asks the kernel for a free loopback port.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startAgent starts `coexist agent --dev` and waits until its node is ready.
// The returned stop sends SIGTERM, on which the dev agent stops its
// containers before it exits.
func startAgent(dir, coexistBin, greeterBin string) (stop func() error, err error) {
	var addrs [3]string
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	logPath := filepath.Join(dir, "agent.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(coexistBin, "agent", "--dev", "--node-id", accNode,
		"--http-addr", addrs[0], "--raft-addr", addrs[1], "--gateway-addr", addrs[2],
		"--port-range", accPortRange, "--start-timeout", "5s", "--data-dir", filepath.Join(dir, "data"),
		"--label", "zone=acc", "--label", "tier=test", "--log-level", "info")
	cmd.Env = append(os.Environ(), "COEXIST_MANAGEMENT_TOKEN="+accToken)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()

	addr := "http://" + addrs[0]
	client, err := api.NewClient(&api.Config{Address: addr, Token: accToken})
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	acc = &accEnv{addr: addr, gateway: addrs[2], greeter: greeterBin, coexist: coexistBin, dir: dir, client: client, logPath: logPath}
	stop = func() error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			return err
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			return errors.New("the dev agent did not stop within 30s of SIGTERM; killed")
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _, err := client.Nodes().Info(context.Background(), accNode, nil)
		if err == nil && n.Status == api.NodeReady {
			break
		}
		select {
		case err := <-exited:
			dumpLog(logPath)
			return nil, fmt.Errorf("the dev agent exited: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = stop()
			dumpLog(logPath)
			return nil, fmt.Errorf("node %s not ready within 30s (last error: %v)", accNode, err)
		}
	}
	// The provider under test is served in-process: it reads these.
	os.Setenv(api.EnvAddress, addr)
	os.Setenv(api.EnvToken, accToken)
	return stop, nil
}

// dumpLog prints the tail of the agent's log, for a failed run.
func dumpLog(p string) {
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	const max = 16 << 10
	if len(b) > max {
		b = b[len(b)-max:]
	}
	fmt.Fprintf(os.Stderr, "--- tail of the dev agent's log (%s) ---\n%s\n", p, b)
}

// testAccPreCheck skips an acceptance test unless TF_ACC is set, and fails
// one that runs without the shared agent.
func testAccPreCheck(t *testing.T) {
	t.Helper()
	if os.Getenv("TF_ACC") == "" {
		t.Skip("acceptance test: set TF_ACC=1 to run it")
	}
	if acc == nil {
		t.Fatal("the acceptance environment is not set up: run with TF_ACC=1")
	}
}

// providerBlock is the provider configuration the tests use: the agent's
// address and token come from the environment TestMain sets.
const providerBlock = `provider "coexist" {}
`

// containerIDs returns the ids of every coexist_container in state.
func containerIDs(s *terraform.State) []string {
	var ids []string
	for _, rs := range s.RootModule().Resources {
		if rs.Type == "coexist_container" {
			ids = append(ids, rs.Primary.ID)
		}
	}
	return ids
}

// checkContainersDestroyed is a CheckDestroy: the registry must answer 404
// for every container that was in state.
func checkContainersDestroyed(s *terraform.State) error {
	for _, id := range containerIDs(s) {
		_, _, err := acc.client.Containers().Info(context.Background(), id, nil)
		if err == nil {
			return fmt.Errorf("container %s still exists in the registry", id)
		}
		if !api.IsNotFound(err) {
			return fmt.Errorf("container %s: %v", id, err)
		}
	}
	return nil
}

// checkVersionsRetired is a CheckDestroy: every coexist_service_version that
// was in state must be retired (or unknown) in the registry.
func checkVersionsRetired(s *terraform.State) error {
	for _, rs := range s.RootModule().Resources {
		if rs.Type != "coexist_service_version" {
			continue
		}
		svc, ver := rs.Primary.Attributes["service"], rs.Primary.Attributes["version"]
		v, err := findVersion(context.Background(), acc.client, svc, ver)
		if err != nil {
			return err
		}
		if v != nil && v.State != api.VersionRetired {
			return fmt.Errorf("version %s of %s is %s, want retired", ver, svc, v.State)
		}
	}
	return nil
}

// checkDestroyed checks both.
func checkDestroyed(s *terraform.State) error {
	if err := checkContainersDestroyed(s); err != nil {
		return err
	}
	return checkVersionsRetired(s)
}

// containerOf reads a container from the registry.
func containerOf(id string) (*api.Container, error) {
	ct, _, err := acc.client.Containers().Info(context.Background(), id, nil)
	return ct, err
}

// stateAttr reads one attribute of a resource in state.
func stateAttr(s *terraform.State, name, key string) (string, error) {
	rs, ok := s.RootModule().Resources[name]
	if !ok {
		return "", fmt.Errorf("%s not in state", name)
	}
	return rs.Primary.Attributes[key], nil
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for time.Now().Before(deadline) {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last error: %v)", d, what, lastErr)
}

// errorRE matches a diagnostic that holds each of parts, in order. Terraform
// wraps diagnostics to its terminal width, so any space in a part matches
// any run of white space.
func errorRE(parts ...string) *regexp.Regexp {
	quoted := make([]string, len(parts))
	for i, p := range parts {
		words := strings.Fields(p)
		for j, w := range words {
			words[j] = regexp.QuoteMeta(w)
		}
		quoted[i] = strings.Join(words, `\s+`)
	}
	return regexp.MustCompile(`(?s)` + strings.Join(quoted, `.*`))
}
