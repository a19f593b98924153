package provider

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/coexist-dev/coexist/api"
)

func versionConfig(service, version, clients, description string) string {
	return providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "v" {
  service     = %q
  version     = %q
  clients     = %q
  description = %q
}
`, service, version, clients, description)
}

// Create, update in place, import, replace on a new version; destroy retires.
func TestAccServiceVersion_basic(t *testing.T) {
	const svc = "acc-sv-basic"
	res := "coexist_service_version.v"
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkVersionsRetired,
		Steps: []resource.TestStep{
			{
				Config: versionConfig(svc, "1.0.0", ">= 1.0, < 2.0", "first"),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(res, tfjsonpath.New("id"), knownvalue.StringExact(svc+"@1.0.0")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("state"), knownvalue.StringExact("active")),
					statecheck.ExpectKnownValue(res, tfjsonpath.New("clients"), knownvalue.StringExact(">= 1.0, < 2.0")),
				},
				Check: checkRegistryVersion(svc, "1.0.0", ">= 1.0, < 2.0", api.VersionActive),
			},
			{
				Config: versionConfig(svc, "1.0.0", ">= 1.0, < 3.0", "wider"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionUpdate)},
				},
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(res, tfjsonpath.New("description"), knownvalue.StringExact("wider")),
				},
				Check: checkRegistryVersion(svc, "1.0.0", ">= 1.0, < 3.0", api.VersionActive),
			},
			{
				ResourceName:      res,
				ImportState:       true,
				ImportStateVerify: true,
			},
			{
				Config: versionConfig(svc, "1.1.0", ">= 1.0, < 3.0", "wider"),
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionDestroyBeforeCreate)},
				},
				Check: resource.ComposeAggregateTestCheckFunc(
					checkRegistryVersion(svc, "1.1.0", ">= 1.0, < 3.0", api.VersionActive),
					checkRegistryVersion(svc, "1.0.0", ">= 1.0, < 3.0", api.VersionRetired),
				),
			},
		},
	})
}

// A version retired outside Terraform is declared again by the next apply:
// a rollback.
func TestAccServiceVersion_retiredOutside(t *testing.T) {
	const svc = "acc-sv-drift"
	res := "coexist_service_version.v"
	cfg := versionConfig(svc, "1.0.0", ">= 1.0", "")
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { testAccPreCheck(t) },
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkVersionsRetired,
		Steps: []resource.TestStep{
			{Config: cfg},
			{
				PreConfig: func() {
					ctx := context.Background()
					if _, _, err := acc.client.Services().Retire(ctx, svc, "1.0.0", nil); err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
					defer cancel()
					if err := waitRetired(ctx, acc.client, svc, "1.0.0"); err != nil {
						t.Fatal(err)
					}
				},
				Config: cfg,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectResourceAction(res, plancheck.ResourceActionCreate)},
				},
				Check: checkRegistryVersion(svc, "1.0.0", ">= 1.0", api.VersionActive),
			},
		},
	})
}

// checkRegistryVersion asks the registry for a version's range and state.
func checkRegistryVersion(svc, ver, clients, state string) resource.TestCheckFunc {
	return func(*terraform.State) error {
		v, err := findVersion(context.Background(), acc.client, svc, ver)
		if err != nil {
			return err
		}
		if v == nil {
			return fmt.Errorf("version %s of %s is not in the registry", ver, svc)
		}
		if v.Clients != clients || v.State != state {
			return fmt.Errorf("version %s of %s: clients %q state %s, want %q %s", ver, svc, v.Clients, v.State, clients, state)
		}
		return nil
	}
}

// A version that another configuration declared is not silently shared, even
// with the same range and description: the second configuration's create
// fails and says to import it, and destroying the second configuration
// leaves the first one's version serving.
func TestAccServiceVersion_existsElsewhere(t *testing.T) {
	testAccPreCheck(t)
	const svc = "acc-sv-taken"
	first := containerConfig(containerSpec{service: svc, name: "taken", args: `["--version", "1.0.0"]`})
	second := providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "mine" {
  service = %q
  version = "1.0.0"
  clients = ">= 1.0, < 2.0"
}
`, svc)
	serving := func() error {
		v, err := findVersion(context.Background(), acc.client, svc, "1.0.0")
		if err != nil {
			return err
		}
		if v == nil || v.State != api.VersionActive {
			return fmt.Errorf("version 1.0.0 of %s: %+v, want active", svc, v)
		}
		rt, _, err := acc.client.Route(context.Background(), api.RouteRequest{Service: svc, ClientVersion: "1.5.0"}, nil)
		if err != nil {
			return fmt.Errorf("route of a 1.5.0 client: %w", err)
		}
		if rt.Version != "1.0.0" || len(rt.Containers) != 1 {
			return fmt.Errorf("route of a 1.5.0 client: %+v", rt)
		}
		return nil
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{Config: first, Check: func(*terraform.State) error { return serving() }},
			{
				// The second configuration: its own working directory and
				// state, against the same registry. Its create fails; its
				// destroy (at the end of its test) has nothing to retire.
				PreConfig: func() {
					t.Run("second configuration", func(t *testing.T) {
						resource.Test(t, resource.TestCase{
							ProtoV6ProviderFactories: protoV6Providers,
							Steps: []resource.TestStep{{
								Config: second,
								ExpectError: errorRE("Service version already exists",
									`Version 1.0.0 of service "acc-sv-taken" already exists (active, clients ">= 1.0, < 2.0")`,
									"import it", "terraform import coexist_service_version.<name> acc-sv-taken@1.0.0"),
							}},
						})
					})
					if err := serving(); err != nil {
						t.Fatalf("after the second configuration was destroyed: %v", err)
					}
				},
				Config: first,
				ConfigPlanChecks: resource.ConfigPlanChecks{
					PreApply: []plancheck.PlanCheck{plancheck.ExpectEmptyPlan()},
				},
			},
		},
	})
}
