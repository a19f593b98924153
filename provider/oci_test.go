package provider

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/coexist-dev/coexist/api"
)

// The oci driver under Terraform: greeter from images (bin/images/greeter,
// which `make build` packs), run by runc under the acceptance agent.

var (
	imagesOnce sync.Once
	imagesDir  string
	imagesErr  error
)

// requireOCI skips, with one loud line, where the agent cannot run oci
// containers (no runc, not root); `make testacc` installs runc.
func requireOCI(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("SKIP: oci acceptance tests need runc (apt-get install runc): ", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("SKIP: oci acceptance tests need root to run runc")
	}
}

// greeterImages returns the image layout holding greeter 1.0.0, 1.1.0 and
// 2.0.0: COEXIST_BIN_DIR's images/greeter when `make build` made it, else
// one packed here with `coexist image pack` from a static greeter.
func greeterImages(t *testing.T) string {
	t.Helper()
	imagesOnce.Do(func() {
		if d := os.Getenv("COEXIST_BIN_DIR"); d != "" && fileExists(filepath.Join(d, "images", "greeter", "index.json")) {
			imagesDir = filepath.Join(d, "images", "greeter")
			return
		}
		static := filepath.Join(acc.dir, "greeter-static")
		build := exec.Command("go", "build", "-o", static, "./examples/greeter")
		build.Dir = ".."
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			imagesErr = fmt.Errorf("go build a static greeter: %v\n%s", err, out)
			return
		}
		dir := filepath.Join(acc.dir, "images", "greeter")
		for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
			pack := exec.Command(acc.coexist, "image", "pack", "--binary", static, "--tag", "greeter:"+v,
				"--env", "GREETER_VERSION="+v, "--out", dir)
			if out, err := pack.CombinedOutput(); err != nil {
				imagesErr = fmt.Errorf("coexist image pack greeter:%s: %v\n%s", v, err, out)
				return
			}
		}
		imagesDir = dir
	})
	if imagesErr != nil {
		t.Fatal(imagesErr)
	}
	return imagesDir
}

// ociMBBConfig declares greeter v1 (1.0.0 or 1.1.0) and 2.0.0, each in an
// oci container from the image of its version, with limits and
// create_before_destroy. Moving v1 from 1.0.0 to 1.1.0 declares 1.1.0,
// replaces the 1.x container and then retires 1.0.0.
func ociMBBConfig(images, v1 string) string {
	return providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "v1" {
  service = "greeter"
  version = %[3]q
  clients = ">= 1.0, < 2.0"
}

resource "coexist_service_version" "v2" {
  service = "greeter"
  version = "2.0.0"
  clients = ">= 2.0, < 3.0"
}

resource "coexist_container" "v1" {
  name      = "oci-greeter-v1"
  node      = %[1]q
  services  = [{ service = "greeter", version = coexist_service_version.v1.version }]
  driver    = "oci"
  config    = { image = "oci:%[2]s:${coexist_service_version.v1.version}" }
  resources = { memory = "64MiB", cpu = "0.50" }
  health        = { http = "/healthz", interval = "200ms" }
  drain_timeout = "10s"
  lifecycle {
    create_before_destroy = true
  }
}

resource "coexist_container" "v2" {
  name      = "oci-greeter-v2"
  node      = %[1]q
  services  = [{ service = "greeter", version = coexist_service_version.v2.version }]
  driver    = "oci"
  config    = { image = "oci:%[2]s:2.0.0" }
  resources = { memory = "64MiB" }
  health        = { http = "/healthz", interval = "200ms" }
  drain_timeout = "10s"
  lifecycle {
    create_before_destroy = true
  }
}
`, accNode, images, v1)
}

// Make-before-break with images: while 1.x and 2.x clients call greeter
// continuously, moving the 1.x container from image 1.0.0 to 1.1.0
// (create_before_destroy) completes with zero failed calls; the new
// container's greeter claims 1.1.0 (the image's own environment), and the
// 2.x container keeps its process. The limits read back exactly as written:
// the plan after each apply is empty, and an import verifies.
//
// Not parallel: it owns the service name "greeter" while it runs.
func TestAccContainer_ociMakeBeforeBreak(t *testing.T) {
	testAccPreCheck(t)
	requireOCI(t)
	images := greeterImages(t)
	first := func(_ *terraform.State, v1 string) error {
		ct, err := containerOf(v1)
		if err != nil {
			return err
		}
		if ct.Driver != "oci" || ct.Resources == nil || ct.Resources.Memory != "64MiB" || ct.Resources.CPU != "0.50" {
			return fmt.Errorf("registry has driver %q resources %+v", ct.Driver, ct.Resources)
		}
		return checkOwnPIDNamespace(ct.Status.PID)
	}
	second := func(_ *terraform.State, oldV1, newV1, v2 string, c loadCounts) error {
		if c.claims[oldV1] != "1.0.0" || c.claims[newV1] != "1.1.0" || c.claims[v2] != "2.0.0" {
			return fmt.Errorf("greeters claim %v; want 1.0.0, 1.1.0 and 2.0.0 from their images", c.claims)
		}
		v, err := findVersion(t.Context(), acc.client, "greeter", "1.0.0")
		if err != nil {
			return err
		}
		if v == nil || v.State != api.VersionRetired {
			return fmt.Errorf("greeter 1.0.0 is %+v, want retired", v)
		}
		ct, err := containerOf(newV1)
		if err != nil {
			return err
		}
		return checkOwnPIDNamespace(ct.Status.PID)
	}
	steps := mbbSteps(t, ociMBBConfig(images, "1.0.0"), ociMBBConfig(images, "1.1.0"), first, second)
	steps[0].ConfigStateChecks = append(steps[0].ConfigStateChecks,
		statecheck.ExpectKnownValue("coexist_container.v1", tfjsonpath.New("driver"), knownvalue.StringExact("oci")),
		statecheck.ExpectKnownValue("coexist_container.v1", tfjsonpath.New("config").AtMapKey("command"), knownvalue.Null()),
		statecheck.ExpectKnownValue("coexist_container.v1", tfjsonpath.New("resources").AtMapKey("cpu"), knownvalue.StringExact("0.50")),
		statecheck.ExpectKnownValue("coexist_container.v2", tfjsonpath.New("resources").AtMapKey("cpu"), knownvalue.Null()))
	// Import reads the image and the limits back as written.
	steps = append(steps, resource.TestStep{ResourceName: "coexist_container.v1", ImportState: true, ImportStateVerify: true})
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps:                    steps,
	})
}

// checkOwnPIDNamespace fails unless pid runs in a pid namespace of its own,
// as an oci container does (an exec container shares the agent's).
func checkOwnPIDNamespace(pid int) error {
	own, err1 := os.Readlink("/proc/self/ns/pid")
	its, err2 := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err1 != nil || err2 != nil || own == its {
		return fmt.Errorf("pid %d: pid namespace %q (%v), the test's %q (%v); want one of its own", pid, its, err2, own, err1)
	}
	return nil
}
