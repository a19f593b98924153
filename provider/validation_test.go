package provider

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
)

// validContainer is a container config whose attributes the cases below
// override one at a time.
func validContainer(overrides map[string]string) string {
	attrs := map[string]string{
		"name":     `"valid"`,
		"node":     fmt.Sprintf("%q", accNode),
		"services": `[{ service = "acc-validation", version = "1.0.0" }]`,
		"config":   `{ command = "/bin/true" }`,
	}
	for k, v := range overrides {
		attrs[k] = v
	}
	var b strings.Builder
	b.WriteString(providerBlock + "\nresource \"coexist_container\" \"c\" {\n")
	for _, k := range []string{"name", "node", "services", "driver", "config", "resources", "health", "restart", "drain_timeout"} {
		if v, ok := attrs[k]; ok {
			fmt.Fprintf(&b, "  %s = %s\n", k, v)
		}
	}
	b.WriteString("}\n")
	return b.String()
}

func validVersionConfig(service, version, clients string) string {
	return providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "v" {
  service = %q
  version = %q
  clients = %q
}
`, service, version, clients)
}

// Every plan-time validation message, one step each: none of them reaches
// the registry.
func TestAccValidation(t *testing.T) {
	testAccPreCheck(t)
	cases := []struct {
		name   string
		config string
		want   *regexp.Regexp
	}{
		{"version string", validVersionConfig("acc-validation", "1.x", ">= 1.0"),
			errorRE("Invalid version", `"1.x" is not a valid version: write a semantic version such as 1.4.2`)},
		{"client range", validVersionConfig("acc-validation", "1.0.0", ">= one"),
			errorRE("Invalid version range", `">= one" is not a valid version range`, `">= 1.0, < 2.0" or "~> 1.4"`)},
		{"empty client range", validVersionConfig("acc-validation", "1.0.0", " "),
			errorRE("Invalid version range", "must not be empty")},
		{"non-canonical version", validVersionConfig("acc-validation", "v1.0", ">= 1.0"),
			errorRE("Invalid version", `"v1.0" is not canonical; write "1.0.0"`)},
		{"unsatisfiable client range", validVersionConfig("acc-validation", "1.0.0", ">= 2.0, < 1.0"),
			errorRE("Invalid version range", `">= 2.0, < 1.0" admits no version`)},
		{"service name", validVersionConfig("Greeter", "1.0.0", ">= 1.0"),
			errorRE("Invalid name", `"Greeter" is not a valid name: use 1 to 63 lowercase letters, digits and dashes`)},
		{"container name too long", validContainer(map[string]string{"name": `"` + strings.Repeat("a", 57) + `"`}),
			errorRE("Invalid name", "is 57 characters long; at most 56 are allowed")},
		{"container name characters", validContainer(map[string]string{"name": `"web_1"`}),
			errorRE("Invalid name", `"web_1" is not a valid name`)},
		{"node name", validContainer(map[string]string{"node": `"-node"`}),
			errorRE("Invalid name", `"-node" is not a valid name`)},
		{"service version in a container", validContainer(map[string]string{"services": `[{ service = "a", version = "one" }]`}),
			errorRE("Invalid version", `"one" is not a valid version`)},
		{"a service twice", validContainer(map[string]string{
			"services": `[{ service = "a", version = "1.0.0" }, { service = "a", version = "2.0.0" }]`}),
			errorRE("Service named twice", `Service "a" is named twice`, "at most one version per service")},
		{"no service", validContainer(map[string]string{"services": `[]`}),
			errorRE("services", "at least 1")},
		{"duration syntax", validContainer(map[string]string{"drain_timeout": `"30 seconds"`}),
			errorRE("Invalid duration", `"30 seconds" is not a valid duration: write a number with a unit, such as 500ms, 30s or 1m30s`)},
		{"duration range", validContainer(map[string]string{"drain_timeout": `"48h"`}),
			errorRE("Invalid duration", `"48h" is out of range: it must be between 1ms and 24h`)},
		{"health interval", validContainer(map[string]string{"health": `{ http = "/healthz", interval = "1d" }`}),
			errorRE("Invalid duration", `health.interval: "1d" is not a valid duration`)},
		{"health path", validContainer(map[string]string{"health": `{ http = "healthz" }`}),
			errorRE("Invalid health check path", `health.http: "healthz" must be an HTTP path starting with /`)},
		{"restart attempts", validContainer(map[string]string{"restart": `{ attempts = 0 }`}),
			errorRE("restart.attempts", "must be between 1 and 1000")},
		{"restart delays", validContainer(map[string]string{"restart": `{ delay = "10s", max_delay = "5s" }`}),
			errorRE("Invalid restart delays", "restart.max_delay (5s) is shorter than restart.delay (10s)")},
		{"restart interval", validContainer(map[string]string{"restart": `{ interval = "48h" }`}),
			errorRE("Invalid duration", `restart.interval: "48h" is out of range: it must be between 1s and 24h`)},
		{"driver", validContainer(map[string]string{"driver": `"docker"`}),
			errorRE("driver", `value must be one of: ["exec" "oci"]`)},
		{"oci without an image", validContainer(map[string]string{"driver": `"oci"`}),
			errorRE("Missing image", `config.image: The oci driver runs config.image, e.g. "oci:/path/to/layout:1.0.0"`)},
		{"exec without a command", validContainer(map[string]string{"config": `{ args = ["--version", "1.0.0"] }`}),
			errorRE("Missing command", "config.command: The exec driver (the default) runs config.command",
				`set driver = "oci" and config.image`)},
		{"image with exec", validContainer(map[string]string{"driver": `"exec"`,
			"config": `{ command = "/bin/true", image = "oci:/images/greeter:1.0.0" }`}),
			errorRE("Image without the oci driver", `config.image: config.image is for driver "oci"`)},
		{"resources with exec", validContainer(map[string]string{"resources": `{ memory = "64MiB" }`}),
			errorRE("Resources without the oci driver", "The exec driver applies no resource limits")},
		{"blank image", validContainer(map[string]string{"driver": `"oci"`, "config": `{ image = " " }`}),
			errorRE("Invalid image", "config.image: The image must not be empty.")},
		{"memory syntax", validContainer(map[string]string{"driver": `"oci"`, "config": `{ image = "oci:/i:1.0.0" }`,
			"resources": `{ memory = "256 megs" }`}),
			errorRE("Invalid memory limit", `resources.memory: "256 megs" is not a size; write e.g. 256MiB or 1GiB`)},
		{"memory minimum", validContainer(map[string]string{"driver": `"oci"`, "config": `{ image = "oci:/i:1.0.0" }`,
			"resources": `{ memory = "1MiB" }`}),
			errorRE("Invalid memory limit", `resources.memory: "1MiB" is less than the minimum of 4MiB`)},
		{"cpu syntax", validContainer(map[string]string{"driver": `"oci"`, "config": `{ image = "oci:/i:1.0.0" }`,
			"resources": `{ cpu = "half" }`}),
			errorRE("Invalid CPU limit", `resources.cpu: "half" is not a number of cores; write e.g. 0.5 or 2`)},
		{"cpu range", validContainer(map[string]string{"driver": `"oci"`, "config": `{ image = "oci:/i:1.0.0" }`,
			"resources": `{ cpu = "0" }`}),
			errorRE("Invalid CPU limit", `resources.cpu: "0" is out of range: want 0.01 to 1024 cores`)},
		{"empty command", validContainer(map[string]string{"config": `{ command = "" }`}),
			errorRE("config.command", "string length must be at least 1")},
		{"empty container name", validContainer(map[string]string{"name": `""`}),
			errorRE("Invalid name", "The name must not be empty")},
		{"empty version", validVersionConfig("acc-validation", "", ">= 1.0"),
			errorRE("Invalid version", "The version must not be empty")},
		{"description length", providerBlock + `
resource "coexist_service_version" "v" {
  service     = "acc-validation"
  version     = "1.0.0"
  clients     = ">= 1.0"
  description = "` + strings.Repeat("x", 1025) + `"
}
`, errorRE("description", "string length must be at most 1024")},
		{"route requirement", providerBlock + `
data "coexist_route" "r" {
  service        = "acc-validation"
  client_version = "1.0.0"
  requires       = { acc-validation = "about 1.4" }
}
`, errorRE("Invalid version range", `requires["acc-validation"]: "about 1.4" is not a valid version range`)},
		{"route client version", providerBlock + `
data "coexist_route" "r" {
  service        = "acc-validation"
  client_version = "1.0.0.0.x"
}
`, errorRE("Invalid version", `"1.0.0.0.x" is not a valid version`)},
		{"service versions state", providerBlock + `
data "coexist_service_versions" "s" {
  state = "gone"
}
`, errorRE("state", `value must be one of: ["active" "draining" "retired"]`)},
		{"env name", validContainer(map[string]string{"config": `{ command = "/bin/true", env = { "A=B" = "1" } }`}),
			errorRE("Invalid environment variable name", `"A=B" is not a valid environment variable name`)},
	}
	steps := make([]resource.TestStep, 0, len(cases))
	for _, tc := range cases {
		steps = append(steps, resource.TestStep{Config: tc.config, ExpectError: tc.want, PlanOnly: true})
	}
	t.Logf("%d validation cases", len(cases))
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		Steps:                    steps,
	})
}

// A registry that is not there, and a token it refuses, fail the plan with a
// diagnostic that says which and what to do.
func TestAccProvider_unreachable(t *testing.T) {
	testAccPreCheck(t)
	addr, err := freeAddr() // nothing listens there once freeAddr returns
	if err != nil {
		t.Fatal(err)
	}
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		Steps: []resource.TestStep{
			{
				Config: fmt.Sprintf(`
provider "coexist" {
  address = "http://%s"
}

data "coexist_nodes" "all" {}
`, addr),
				ExpectError: errorRE("Cannot reach the coexist registry", "Cannot reach the coexist registry at http://"+addr,
					"connection refused", "Check the provider's address (or COEXIST_ADDR)"),
			},
		},
	})
}

func TestAccProvider_badToken(t *testing.T) {
	testAccPreCheck(t)
	resource.ParallelTest(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		Steps: []resource.TestStep{
			{
				Config: `
provider "coexist" {
  token = "not-the-token-0123456789"
}

data "coexist_nodes" "all" {}
`,
				ExpectError: errorRE("The coexist registry refused the token", "refused the token", "unknown token",
					"Set the provider's token (or COEXIST_TOKEN) to a valid ACL token"),
			},
			{
				Config: `
provider "coexist" {
  address = "127.0.0.1:7700"
}

data "coexist_nodes" "all" {}
`,
				ExpectError: errorRE("Invalid coexist provider settings", `invalid registry address "127.0.0.1:7700"`,
					"must be an http:// or https:// URL"),
			},
		},
	})
}
