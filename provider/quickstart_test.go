package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/config"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// quickstartConfig is examples/quickstart as it is shipped, less its
// terraform.tf (whose required_providers names the published source, while
// the tests serve this provider in-process).
func quickstartConfig(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(providerBlock)
	for _, f := range []string{"variables.tf", "main.tf", "outputs.tf"} {
		src, err := os.ReadFile(filepath.Join("..", "examples", "quickstart", f))
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("\n# --- " + f + "\n")
		b.Write(src)
	}
	return b.String()
}

// The quickstart: greeter 1.x and 2.x coexist, each client generation is
// routed to its own version; then greeter 1.0.0 is upgraded to 1.1.0 under
// load (a new version and container first, then the old ones drain and
// retire) with no failed call. It logs the apply times (declare -> healthy).
//
// Not parallel: it owns the service name "greeter" while it runs.
func TestAccQuickstart(t *testing.T) {
	testAccPreCheck(t)
	cfg := quickstartConfig(t)
	vars := func(v1 string) config.Variables {
		return config.Variables{
			"greeter_command":   config.StringVariable(acc.greeter),
			"greeter_1_version": config.StringVariable(v1),
		}
	}
	c1, c2 := "coexist_container.greeter_1", "coexist_container.greeter_2"
	var began time.Time
	var load *loadGen
	t.Cleanup(func() {
		if load != nil {
			load.stop()
		}
	})
	var v2pid string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{
				PreConfig:       func() { began = time.Now() },
				Config:          cfg,
				ConfigVariables: vars("1.0.0"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(c1, tfjsonpath.New("state"), knownvalue.StringExact("running")),
					statecheck.ExpectKnownValue(c2, tfjsonpath.New("state"), knownvalue.StringExact("running")),
					statecheck.ExpectKnownOutputValue("routes", knownvalue.MapExact(map[string]knownvalue.Check{
						"1.3.0": knownvalue.StringExact("1.0.0"),
						"2.1.0": knownvalue.StringExact("2.0.0"),
					})),
				},
				Check: func(s *terraform.State) error {
					t.Logf("quickstart apply (plan, declare 2 versions and 2 containers, wait until healthy, read routes): %s",
						time.Since(began).Round(time.Millisecond))
					v2pid, _ = stateAttr(s, c2, "pid")
					return nil
				},
			},
			{
				PreConfig: func() {
					load = startLoad(acc.gateway, []string{"1.3.0", "2.1.0"}, 2)
					waitFor(t, "the load generator's first calls", 10*time.Second, func() (bool, error) {
						c := load.counts()
						if len(c.failures) > 0 {
							return false, errors.New(c.failures[0])
						}
						return c.ok >= 50, nil
					})
					began = time.Now()
				},
				Config:          cfg,
				ConfigVariables: vars("1.1.0"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction("coexist_service_version.greeter_1", plancheck.ResourceActionCreateBeforeDestroy),
						plancheck.ExpectResourceAction(c1, plancheck.ResourceActionCreateBeforeDestroy),
						plancheck.ExpectResourceAction(c2, plancheck.ResourceActionNoop),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownOutputValue("routes", knownvalue.MapExact(map[string]knownvalue.Check{
						"1.3.0": knownvalue.StringExact("1.1.0"),
						"2.1.0": knownvalue.StringExact("2.0.0"),
					})),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkVersionState("greeter", "1.0.0", "retired"),
					func(s *terraform.State) error {
						t.Logf("quickstart upgrade apply (greeter 1.0.0 -> 1.1.0, make-before-break, old version retired): %s",
							time.Since(began).Round(time.Millisecond))
						time.Sleep(200 * time.Millisecond)
						load.stop()
						c := load.counts()
						t.Logf("load during the upgrade: %d calls ok, %d retries, %d failed; served by %v",
							c.ok, c.retries, len(c.failures), c.servedBy)
						if len(c.failures) > 0 {
							return fmt.Errorf("%d calls failed during the upgrade, first: %s", len(c.failures), c.failures[0])
						}
						if pid, _ := stateAttr(s, c2, "pid"); pid != v2pid {
							return fmt.Errorf("greeter 2.x container restarted: pid %s, was %s", pid, v2pid)
						}
						return nil
					},
				),
			},
		},
	})
}

// checkVersionState asks the registry for a version's state.
func checkVersionState(svc, ver, state string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		v, err := findVersion(context.Background(), acc.client, svc, ver)
		if err != nil {
			return err
		}
		if v == nil || v.State != state {
			return fmt.Errorf("version %s of %s: %+v, want state %s", ver, svc, v, state)
		}
		return nil
	}
}

// The quickstart recovers with a plain apply after greeter 1.0.0 is retired
// outside Terraform (through the API): the apply declares it again (a
// rollback), waits until its container, stopped when its only version
// retired, runs again, and reads the routes after that.
//
// Not parallel: it owns the service name "greeter" while it runs.
func TestAccQuickstart_retiredOutside(t *testing.T) {
	testAccPreCheck(t)
	cfg := quickstartConfig(t)
	vars := config.Variables{"greeter_command": config.StringVariable(acc.greeter)}
	v1, c1, c2 := "coexist_service_version.greeter_1", "coexist_container.greeter_1", "coexist_container.greeter_2"
	var id1 string
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{
				Config:          cfg,
				ConfigVariables: vars,
				Check: func(s *terraform.State) error {
					var err error
					id1, err = stateAttr(s, c1, "id")
					return err
				},
			},
			{
				PreConfig: func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if _, _, err := acc.client.Services().Retire(ctx, "greeter", "1.0.0", nil); err != nil {
						t.Fatalf("retire greeter 1.0.0 through the API: %v", err)
					}
					if err := waitRetired(ctx, acc.client, "greeter", "1.0.0"); err != nil {
						t.Fatal(err)
					}
					waitFor(t, "container "+id1+" to stop", 30*time.Second, func() (bool, error) {
						ct, err := containerOf(id1)
						return err == nil && ct.Status != nil && ct.Status.State == "stopped", err
					})
				},
				Config:          cfg,
				ConfigVariables: vars,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{
						plancheck.ExpectResourceAction(v1, plancheck.ResourceActionCreate),
						plancheck.ExpectResourceAction(c1, plancheck.ResourceActionUpdate),
						plancheck.ExpectResourceAction(c2, plancheck.ResourceActionNoop),
					},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(c1, tfjsonpath.New("id"), knownvalue.StringFunc(func(id string) error {
						if id != id1 {
							return fmt.Errorf("container replaced: %s, was %s", id, id1)
						}
						return nil
					})),
					statecheck.ExpectKnownValue(c1, tfjsonpath.New("state"), knownvalue.StringExact("running")),
					statecheck.ExpectKnownOutputValue("routes", knownvalue.MapExact(map[string]knownvalue.Check{
						"1.3.0": knownvalue.StringExact("1.0.0"),
						"2.1.0": knownvalue.StringExact("2.0.0"),
					})),
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkVersionState("greeter", "1.0.0", "active"),
					func(s *terraform.State) error { return checkRegistryContainer(s, c1, "running") },
				),
			},
		},
	})
}
