package provider

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/coexist-dev/coexist/api"
)

// containerSpec is what the container configs of these tests vary.
type containerSpec struct {
	service string // service name; its version 1.0.0 is declared alongside
	name    string
	args    string // HCL list
	env     string // HCL map, or "" for none
	extra   string // more attributes
	cbd     bool   // lifecycle { create_before_destroy = true }
}

// containerConfig declares version 1.0.0 of spec.service and one greeter
// container holding it.
func containerConfig(s containerSpec) string {
	env := ""
	if s.env != "" {
		env = "\n    env     = " + s.env
	}
	lifecycle := ""
	if s.cbd {
		lifecycle = "\n  lifecycle {\n    create_before_destroy = true\n  }"
	}
	return providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "v1" {
  service = %[1]q
  version = "1.0.0"
  clients = ">= 1.0, < 2.0"
}

resource "coexist_container" "c" {
  name = %[2]q
  node = %[3]q
  services = [{
    service = coexist_service_version.v1.service
    version = coexist_service_version.v1.version
  }]
  config = {
    command = %[4]q
    args    = %[5]s%[6]s
  }
  health = {
    http     = "/healthz"
    interval = "200ms"
  }
  %[7]s%[8]s
}
`, s.service, s.name, accNode, acc.greeter, s.args, env, s.extra, lifecycle)
}

// Create, update in place (the process keeps running), import, replace on a
// change of what runs; destroy drains, stops and removes it.
func TestAccContainer_basic(t *testing.T) {
	testAccPreCheck(t)
	const svc = "acc-ct-basic"
	res := "coexist_container.c"
	base := containerSpec{service: svc, name: "basic", args: `["--version", "1.0.0"]`, env: `{ GREETER_NOTE = "one" }`}
	updated := base
	updated.extra = "drain_timeout = \"45s\"\n  restart = { attempts = 3, delay = \"1s\" }"
	replaced := updated
	replaced.args = `["--version", "1.0.1"]`

	samePID := statecheck.CompareValue(compare.ValuesSame())
	var firstID string
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{
				Config: containerConfig(base),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(res, tfjsonpath.New("id"), knownvalue.StringRegexp(regexp.MustCompile(`^basic-[a-z0-9]{5}$`))),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("state"), knownvalue.StringExact("running")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("driver"), knownvalue.StringExact("exec")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("drain_timeout"), knownvalue.StringExact("30s")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("health").AtMapKey("tcp"), knownvalue.Bool(false)),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("health").AtMapKey("timeout"), knownvalue.StringExact("1s")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("endpoint"), knownvalue.StringRegexp(regexp.MustCompile(`^127\.0\.0\.1:229\d\d$`))),
					samePID.AddStateValue(res, tfjsonpath.New("pid")),
				},
				Check: func(s *terraform.State) error {
					firstID, _ = stateAttr(s, res, "id")
					return checkRegistryContainer(s, res, api.ContainerRunning)
				},
			},
			{
				Config: containerConfig(updated),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(res, tfjsonpath.New("drain_timeout"), knownvalue.StringExact("45s")),
					samePID.AddStateValue(res, tfjsonpath.New("pid")),
				},
				Check: func(s *terraform.State) error {
					id, _ := stateAttr(s, res, "id")
					ct, err := containerOf(id)
					if err != nil {
						return err
					}
					if ct.DrainTimeout.Std() != 45*time.Second || ct.Restart == nil || ct.Restart.Attempts != 3 {
						return fmt.Errorf("registry has drain_timeout %s restart %+v", ct.DrainTimeout, ct.Restart)
					}
					if id != firstID {
						return fmt.Errorf("id changed from %s to %s on an in-place update", firstID, id)
					}
					return nil
				},
			},
			{
				ResourceName:      res,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				Config: containerConfig(replaced),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionDestroyBeforeCreate)},
				},
				Check: func(s *terraform.State) error {
					id, _ := stateAttr(s, res, "id")
					if id == firstID {
						return fmt.Errorf("replacement kept id %s", id)
					}
					if _, err := containerOf(firstID); !api.IsNotFound(err) {
						return fmt.Errorf("replaced container %s: want 404, got %v", firstID, err)
					}
					return checkRegistryContainer(s, res, api.ContainerRunning)
				},
			},
		},
	})
}

// checkRegistryContainer asks the registry for the container in state.
func checkRegistryContainer(s *terraform.State, res, state string) error {
	id, err := stateAttr(s, res, "id")
	if err != nil {
		return err
	}
	ct, err := containerOf(id)
	if err != nil {
		return err
	}
	if ct.Status == nil || ct.Status.State != state {
		return fmt.Errorf("container %s: status %+v, want state %s", id, ct.Status, state)
	}
	if name, _ := stateAttr(s, res, "name"); ct.Name != name {
		return fmt.Errorf("container %s: name %q in state, %q in the registry", id, name, ct.Name)
	}
	pid, _ := stateAttr(s, res, "pid")
	if pid != strconv.Itoa(ct.Status.PID) {
		return fmt.Errorf("container %s: pid %s in state, %d in the registry", id, pid, ct.Status.PID)
	}
	return nil
}

// A container whose health check never passes fails the apply with the
// container's own output, and is left tainted (then destroyed).
func TestAccContainer_healthFailure(t *testing.T) {
	testAccPreCheck(t)
	spec := containerSpec{service: "acc-ct-unhealthy", name: "unhealthy", args: `["--version", "1.0.7"]`,
		env: `{ GREETER_FAIL_HEALTH = "1" }`}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{
				Config: containerConfig(spec),
				// The greeter's own stdout line, relayed by the agent.
				ExpectError: errorRE("Container did not become healthy", "failed before it passed its first health check",
					"GET /healthz answered 500", "last output:", "greeter 1.0.7 listening on 127.0.0.1:"),
			},
		},
	})
}

// What needs the registry's state is checked by the registry at create: a
// container naming a version that is not declared, or a node that is not
// registered, is refused with a 400 that names the field.
func TestAccContainer_refusedByRegistry(t *testing.T) {
	testAccPreCheck(t)
	cfg := func(node string) string {
		return providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "declared" {
  service = "acc-ct-refused-ok"
  version = "1.0.0"
  clients = ">= 1.0"
}

resource "coexist_container" "c" {
  name = "refused"
  node = %q
  services = [
    { service = coexist_service_version.declared.service, version = coexist_service_version.declared.version },
    { service = "acc-ct-refused", version = "1.4.2" },
  ]
  config = { command = %q }
}
`, node, acc.greeter)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{
				Config: cfg(accNode),
				ExpectError: errorRE("Cannot create container",
					`services[0].version: version 1.4.2 of service "acc-ct-refused" is not declared`,
					"Declare that version with a coexist_service_version resource"),
			},
			{
				Config: cfg("no-such-node"),
				ExpectError: errorRE("Cannot create container", `node: node "no-such-node" is not registered`,
					"the coexist_nodes data source lists them"),
			},
		},
	})
}

// Drift: a container deleted through the API is planned to be created again;
// one that fails outside Terraform is planned for replacement.
func TestAccContainer_drift(t *testing.T) {
	testAccPreCheck(t)
	res := "coexist_container.c"
	spec := containerSpec{service: "acc-ct-drift", name: "drift", args: `["--version", "1.0.0"]`,
		extra: "restart = { attempts = 1 }\n  timeouts {\n    create = \"1m\"\n    delete = \"2m\"\n  }"}
	cfg := containerConfig(spec)
	var id string
	remember := func(s *terraform.State) error {
		var err error
		id, err = stateAttr(s, res, "id")
		return err
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{Config: cfg, Check: remember},
			{
				PreConfig: func() {
					if _, _, err := acc.client.Containers().Delete(context.Background(), id, nil); err != nil {
						t.Fatal(err)
					}
					waitFor(t, "container "+id+" to leave the registry", 30*time.Second, func() (bool, error) {
						_, err := containerOf(id)
						return api.IsNotFound(err), err
					})
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionCreate)},
				},
				Check: resource.ComposeAggregateTestCheckFunc(remember,
					func(s *terraform.State) error { return checkRegistryContainer(s, res, api.ContainerRunning) }),
			},
			{
				// Kill its process twice: with restart.attempts = 1 the
				// agent restarts it once, then gives up and reports it
				// failed.
				PreConfig: func() {
					for kill := 1; kill <= 2; kill++ {
						var pid int
						waitFor(t, "container "+id+" to run", 30*time.Second, func() (bool, error) {
							ct, err := containerOf(id)
							if err != nil || ct.Status == nil || ct.Status.State != api.ContainerRunning {
								return false, err
							}
							pid = ct.Status.PID
							return pid != 0, nil
						})
						if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
							t.Fatal(err)
						}
						waitFor(t, fmt.Sprintf("container %s to exit after kill %d", id, kill), 30*time.Second, func() (bool, error) {
							ct, err := containerOf(id)
							return err == nil && ct.Status != nil && ct.Status.PID != pid, err
						})
					}
					waitFor(t, "container "+id+" to be failed", 30*time.Second, func() (bool, error) {
						ct, err := containerOf(id)
						return err == nil && ct.Status != nil && ct.Status.State == api.ContainerFailed, err
					})
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionDestroyBeforeCreate)},
				},
				Check: func(s *terraform.State) error {
					newID, _ := stateAttr(s, res, "id")
					if newID == id || !strings.HasPrefix(newID, "drift-") {
						return fmt.Errorf("failed container %s was not replaced (now %s)", id, newID)
					}
					return checkRegistryContainer(s, res, api.ContainerRunning)
				},
			},
		},
	})
}

// Import of a container declared outside Terraform (by curl, without a name)
// keeps its id and takes the id as its name, so a configuration that names
// it by its id plans no change; import of one Terraform made reads back the
// name it was declared with.
func TestAccContainer_importLegacy(t *testing.T) {
	testAccPreCheck(t)
	const svc, id = "acc-ct-legacy", "legacy-one"
	ctx := context.Background()
	// Declared through the API, as curl would.
	if _, _, err := acc.client.Services().Declare(ctx, svc, "1.0.0", api.VersionRequest{Clients: ">= 1.0, < 2.0"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := acc.client.Containers().Declare(ctx, id, api.ContainerRequest{
		Node:     accNode,
		Services: []api.ServiceRef{{Service: svc, Version: "1.0.0"}},
		Config:   api.DriverConfig{Command: acc.greeter, Args: []string{"--version", "1.0.0"}},
		Health:   &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(200 * time.Millisecond)},
	}, &api.WriteOptions{CAS: api.CAS(0)}); err != nil {
		t.Fatal(err)
	}
	res := "coexist_container.c"
	cfg := containerConfig(containerSpec{service: svc, name: id, args: `["--version", "1.0.0"]`})
	imports := fmt.Sprintf(`
import {
  to = coexist_service_version.v1
  id = "%s@1.0.0"
}

import {
  to = coexist_container.c
  id = %q
}
`, svc, id)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{
				// Import blocks: both are adopted, and nothing changes.
				Config: cfg + imports,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(res, plancheck.ResourceActionNoop),
						plancheck.ExpectResourceAction("coexist_service_version.v1", plancheck.ResourceActionNoop),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(res, tfjsonpath.New("id"), knownvalue.StringExact(id)),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("name"), knownvalue.StringExact(id)),
				},
			},
			{
				// terraform import: the same state.
				ResourceName:      res,
				ImportState:       true,
				ImportStateId:     id,
				ImportStateVerify: true,
			},
			{Config: cfg, PlanOnly: true},
		},
	})
}

// A container that crashes after it became healthy is restarted with growing
// delays and reported starting in between: the plan stays empty (no
// replacement) while it has restarts left, and plans its replacement once it
// has used them up and is failed for good.
func TestAccContainer_planStableWhileRestarting(t *testing.T) {
	testAccPreCheck(t)
	res := "coexist_container.c"
	spec := containerSpec{service: "acc-ct-restarts", name: "restarts", args: `["--version", "1.0.0"]`,
		env:   `{ GREETER_CRASH_AFTER = "1s" }`,
		extra: "restart = { attempts = 2, interval = \"10m\", delay = \"5s\", max_delay = \"1m\" }"}
	cfg := containerConfig(spec)
	var id string
	status := func() (*api.ContainerStatus, error) {
		ct, err := containerOf(id)
		if err != nil || ct.Status == nil {
			return nil, err
		}
		return ct.Status, nil
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{Config: cfg, Check: func(s *terraform.State) (err error) {
				id, err = stateAttr(s, res, "id")
				return err
			}},
			{
				// Between its first crash and its restart (5s later).
				PreConfig: func() {
					waitFor(t, "container "+id+" to exit", 30*time.Second, func() (bool, error) {
						st, err := status()
						return st != nil && st.PID == 0, err
					})
					if st, _ := status(); st.State != api.ContainerStarting {
						t.Errorf("between restarts the container is %q, want starting (failed is for good)", st.State)
					}
				},
				Config:   cfg,
				PlanOnly: true,
			},
			{
				// Two restarts (after 5s and 10s), then the third exit
				// within the interval fails it for good.
				PreConfig: func() {
					waitFor(t, "container "+id+" to be failed", 60*time.Second, func() (bool, error) {
						st, err := status()
						return st != nil && st.State == api.ContainerFailed, err
					})
					if st, _ := status(); st.Restarts != 2 {
						t.Errorf("failed after %d restarts, want 2", st.Restarts)
					}
				},
				Config:             cfg,
				PlanOnly:           true,
				ExpectNonEmptyPlan: true,
			},
		},
	})
}
