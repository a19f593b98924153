package provider

import (
	"fmt"
	"regexp"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

func nodesConfig(filter string) string {
	return providerBlock + fmt.Sprintf(`
data "coexist_nodes" "n" {
  %s
}
`, filter)
}

// coexist_nodes lists the agent's node, and filters by labels and status.
func TestAccNodesDataSource(t *testing.T) {
	testAccPreCheck(t)
	ds := "data.coexist_nodes.n"
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		Steps: []resource.TestStep{
			{
				Config:      nodesConfig(`status = "up"`),
				ExpectError: errorRE("status", `value must be one of: ["ready" "down"]`),
			},
			{
				Config: nodesConfig(""),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("nodes"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"id":      knownvalue.StringExact(accNode),
							"address": knownvalue.NotNull(),
							"gateway": knownvalue.StringExact(acc.gateway),
							"labels": knownvalue.MapExact(map[string]knownvalue.Check{
								"zone": knownvalue.StringExact("acc"), "tier": knownvalue.StringExact("test"),
							}),
							"status": knownvalue.StringExact("ready"),
						}),
					})),
				},
			},
			{
				Config: nodesConfig(`labels = { zone = "acc" }
  status = "ready"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("nodes"), knownvalue.ListSizeExact(1)),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("nodes").AtSliceIndex(0).AtMapKey("id"), knownvalue.StringExact(accNode)),
				},
			},
			{
				Config: nodesConfig(`labels = { zone = "elsewhere" }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("nodes"), knownvalue.ListSizeExact(0)),
				},
			},
		},
	})
}

// coexist_service_versions lists declared versions, by service and state.
func TestAccServiceVersionsDataSource(t *testing.T) {
	testAccPreCheck(t)
	const svc = "acc-ds-versions"
	versions := providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "a" {
  service     = %[1]q
  version     = "1.0.0"
  clients     = ">= 1.0, < 2.0"
  description = "one"
}

resource "coexist_service_version" "b" {
  service = %[1]q
  version = "2.0.0"
  clients = ">= 2.0"
}
`, svc)
	query := func(filter string) string {
		return versions + fmt.Sprintf(`
data "coexist_service_versions" "q" {
  %s
  depends_on = [coexist_service_version.a, coexist_service_version.b]
}
`, filter)
	}
	ds := "data.coexist_service_versions.q"
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkVersionsRetired,
		Steps: []resource.TestStep{
			{
				Config: query(fmt.Sprintf("service = %q", svc)),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("versions"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"id": knownvalue.StringExact(svc + "@1.0.0"), "service": knownvalue.StringExact(svc),
							"version": knownvalue.StringExact("1.0.0"), "clients": knownvalue.StringExact(">= 1.0, < 2.0"),
							"description": knownvalue.StringExact("one"), "state": knownvalue.StringExact("active"),
						}),
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"id": knownvalue.StringExact(svc + "@2.0.0"), "service": knownvalue.StringExact(svc),
							"version": knownvalue.StringExact("2.0.0"), "clients": knownvalue.StringExact(">= 2.0"),
							"description": knownvalue.StringExact(""), "state": knownvalue.StringExact("active"),
						}),
					})),
				},
			},
			{
				Config: query(`service = "acc-ds-no-such-service"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("versions"), knownvalue.ListSizeExact(0)),
				},
			},
			{
				Config: query(fmt.Sprintf("service = %q\n  state = \"retired\"", svc)),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("versions"), knownvalue.ListSizeExact(0)),
				},
			},
			{
				Config: query(`state = "active"`),
				Check:  resource.TestCheckTypeSetElemNestedAttrs(ds, "versions.*", map[string]string{"id": svc + "@2.0.0"}),
			},
		},
	})
}

// coexist_route answers what routing.Select chooses for a client version.
func TestAccRouteDataSource(t *testing.T) {
	testAccPreCheck(t)
	const svc = "acc-ds-route"
	base := providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "v1" {
  service = %[1]q
  version = "1.4.0"
  clients = ">= 1.0, < 2.0"
}

resource "coexist_service_version" "v2" {
  service = %[1]q
  version = "2.0.0"
  clients = ">= 1.5, < 3.0"
}

resource "coexist_container" "v1" {
  name     = "route-v1"
  node     = %[2]q
  services = [{ service = %[1]q, version = coexist_service_version.v1.version }]
  config   = { command = %[3]q, args = ["--version", "1.4.0"] }
  health   = { http = "/healthz", interval = "200ms" }
}

resource "coexist_container" "v2" {
  name     = "route-v2"
  node     = %[2]q
  services = [{ service = %[1]q, version = coexist_service_version.v2.version }]
  config   = { command = %[3]q, args = ["--version", "2.0.0"] }
  health   = { http = "/healthz", interval = "200ms" }
}
`, svc, accNode, acc.greeter)
	route := func(args string) string {
		return base + fmt.Sprintf(`
data "coexist_route" "r" {
  service = %q
  %s
  depends_on = [coexist_container.v1, coexist_container.v2]
}
`, svc, args)
	}
	ds := "data.coexist_route.r"
	containerID := regexp.MustCompile(`^route-v1-[a-z0-9]{5}$`)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps: []resource.TestStep{
			{
				Config:      route(`client_version = "three"`),
				ExpectError: errorRE("Invalid version", `"three" is not a valid version`),
			},
			{
				// A 1.3 client only fits 1.4.0.
				Config: route(`client_version = "1.3.0"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("version"), knownvalue.StringExact("1.4.0")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("state"), knownvalue.StringExact("active")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("clients"), knownvalue.StringExact(">= 1.0, < 2.0")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("reason"), knownvalue.NotNull()),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("containers"), knownvalue.ListExact([]knownvalue.Check{
						knownvalue.ObjectExact(map[string]knownvalue.Check{
							"id":       knownvalue.StringRegexp(containerID),
							"node":     knownvalue.StringExact(accNode),
							"gateway":  knownvalue.StringExact(acc.gateway),
							"endpoint": knownvalue.StringRegexp(regexp.MustCompile(`^127\.0\.0\.1:\d+$`)),
						}),
					})),
				},
				Check: resource.TestCheckResourceAttrPair(ds, "containers.0.id", "coexist_container.v1", "id"),
			},
			{
				// A 1.6 client fits both: the highest wins...
				Config: route(`client_version = "1.6.0"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("version"), knownvalue.StringExact("2.0.0")),
				},
			},
			{
				// A 3.1 client has no version: an answer that says why, not
				// an error that would block a plan.
				Config: route(`client_version = "3.1.0"`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("id"), knownvalue.StringExact(svc+"?client_version=3.1.0")),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("version"), knownvalue.Null()),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("containers"), knownvalue.ListSizeExact(0)),
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("reason"),
						knownvalue.StringRegexp(regexp.MustCompile(`^no compatible version of service "acc-ds-route" for client 3\.1\.0: 1\.4\.0 \(active`))),
				},
			},
			{
				// ...unless the client requires 1.x.
				Config: route(`client_version = "1.6.0"
  client_name    = "web"
  requires       = { "acc-ds-route" = "~> 1.0" }`),
				ConfigStateChecks: []statecheck.StateCheck{
					statecheck.ExpectKnownValue(ds, tfjsonpath.New("version"), knownvalue.StringExact("1.4.0")),
				},
			},
		},
	})
}
