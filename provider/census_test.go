package provider

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/terraform"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client"
)

func strandConfig(service, clients string, force bool) string {
	return providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "v" {
  service      = %q
  version      = "1.0.0"
  clients      = %q
  force_retire = %t
}

data "coexist_clients" "c" {
  service = %q
}
`, service, clients, force, service)
}

// A live SDK client whose only version is managed here: destroying the
// version, or narrowing its range past the client, fails at plan time and
// names web@1.5.0; force_retire = true lets both go ahead. Every apply
// waits until its write is in force, and coexist_clients lists the cohort.
func TestAccServiceVersion_stranding(t *testing.T) {
	testAccPreCheck(t)
	const svc = "acc-strand"
	ctx := context.Background()
	inForce := func(*terraform.State) error {
		v, err := findVersion(ctx, acc.client, svc, "1.0.0")
		if err != nil || v == nil {
			return fmt.Errorf("read version: %v", err)
		}
		f, err := acc.client.Census().InForce(ctx, v.ModifyIndex, 0)
		if err != nil {
			return err
		}
		if !f.InForce {
			return fmt.Errorf("apply returned before the write at %d was in force: %+v", v.ModifyIndex, f)
		}
		return nil
	}
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkVersionsRetired,
		Steps: []resource.TestStep{
			{Config: strandConfig(svc, ">= 1.0, < 2.0", false), Check: inForce},
			{
				PreConfig: func() { liveClient(t, svc) },
				Config:    strandConfig(svc, ">= 1.0, < 2.0", false),
				Check: resource.ComposeAggregateTestCheckFunc(
					resource.TestCheckResourceAttr("data.coexist_clients.c", "cohorts.#", "1"),
					resource.TestCheckResourceAttr("data.coexist_clients.c", "cohorts.0.name", "web"),
					resource.TestCheckResourceAttr("data.coexist_clients.c", "cohorts.0.version", "1.5.0"),
				),
			},
			{
				Config:      strandConfig(svc, ">= 1.6, < 2.0", false),
				PlanOnly:    true,
				ExpectError: errorRE("strand live clients", "web@1.5.0, 1 instance"),
			},
			{
				Config:      providerBlock,
				PlanOnly:    true,
				ExpectError: errorRE("strand live clients", "web@1.5.0, 1 instance"),
			},
			{Config: strandConfig(svc, ">= 1.0, < 2.0", true), Check: inForce},
			{Config: strandConfig(svc, ">= 1.6, < 2.0", true), Check: inForce},
		},
	})
}

// liveClient runs a greeter container of svc@1.0.0 and an SDK client
// web@1.5.0 that calls svc, until the test ends, and waits until the census
// counts it.
func liveClient(t *testing.T, svc string) {
	t.Helper()
	ctx := context.Background()
	req := api.ContainerRequest{Node: accNode, Services: []api.ServiceRef{{Service: svc, Version: "1.0.0"}},
		Config: api.DriverConfig{Command: acc.greeter, Args: []string{"--version", "1.0.0"}},
		Health: &api.HealthCheck{HTTP: "/healthz", Interval: api.Duration(200 * time.Millisecond)}}
	if _, _, err := acc.client.Containers().Declare(ctx, svc+"-c", req, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _, _ = acc.client.Containers().Delete(context.Background(), svc+"-c", nil) })
	waitFor(t, "the container to run", 30*time.Second, func() (bool, error) {
		ct, err := containerOf(svc + "-c")
		return err == nil && ct.Status != nil && ct.Status.State == api.ContainerRunning, nil
	})
	cl, err := client.New(ctx, client.Config{Name: "web", Version: "1.5.0", Registry: acc.addr, Token: acc.client.Token()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+svc+"/hello", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := cl.HTTPClient().Do(r); err == nil {
		resp.Body.Close()
	}
	waitFor(t, "the census to count web@1.5.0", 30*time.Second, func() (bool, error) {
		cs, _, err := acc.client.Census().Get(ctx, nil)
		if err != nil {
			return false, err
		}
		for _, c := range cs.Cohorts {
			if c.Name == "web" && slices.Contains(c.Calls, svc) {
				return true, nil
			}
		}
		return false, nil
	})
}
