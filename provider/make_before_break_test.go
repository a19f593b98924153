package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-testing/compare"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/plancheck"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client/callpolicy"
)

// loadGen calls greeter through the node's gateway from several goroutines,
// as 1.x and 2.x clients, until stopped. A call is retried by the SDK's own
// policy (package callpolicy): only when it never reached a service.
// Anything else that is not a 200 from the right major version is a failure.
type loadGen struct {
	gateway string
	client  *http.Client
	stopped chan struct{}
	once    sync.Once
	wg      sync.WaitGroup

	mu       sync.Mutex
	ok       int
	retries  int
	failures []string
	servedBy map[string]int    // container id -> calls it served
	claims   map[string]string // container id -> the version its greeter claims (Greeter-Version)
}

// startLoad starts workers goroutines per client version.
func startLoad(gateway string, clientVersions []string, workers int) *loadGen {
	l := &loadGen{
		gateway:  gateway,
		client:   &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}},
		stopped:  make(chan struct{}),
		servedBy: map[string]int{},
		claims:   map[string]string{},
	}
	for _, v := range clientVersions {
		for range workers {
			l.wg.Add(1)
			go l.run(v)
		}
	}
	return l
}

func (l *loadGen) run(clientVersion string) {
	defer l.wg.Done()
	for {
		select {
		case <-l.stopped:
			return
		default:
		}
		id, claim, retries, err := l.call(clientVersion)
		l.mu.Lock()
		l.retries += retries
		if err != nil {
			l.failures = append(l.failures, fmt.Sprintf("client %s: %v", clientVersion, err))
		} else {
			l.ok++
			l.servedBy[id]++
			l.claims[id] = claim
		}
		l.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
	}
}

// call makes one call, with retries within a 10s deadline (the SDK's call
// policy), and returns the id of the container that served it and the
// version its greeter claims.
func (l *loadGen) call(clientVersion string) (string, string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var policy callpolicy.Call
	retries := 0
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+l.gateway+"/greeter/hello?name=load", nil)
		if err != nil {
			return "", "", retries, err
		}
		req.Header.Set(api.HeaderClient, "load")
		req.Header.Set(api.HeaderClientVersion, clientVersion)
		resp, err := l.client.Do(req)
		outcome := callpolicy.Classify(resp, err)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				sb, err := api.ParseServedBy(resp.Header.Get(api.HeaderServedBy))
				if err != nil {
					return "", "", retries, err
				}
				major, _, _ := strings.Cut(clientVersion, ".")
				if sb.Service != "greeter" || !strings.HasPrefix(sb.Version, major+".") {
					return "", "", retries, fmt.Errorf("client %s served by %q", clientVersion, sb)
				}
				return sb.Container, resp.Header.Get("Greeter-Version"), retries, nil
			}
			err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		pause, again := policy.Retry(outcome, true, time.Now(), deadline, callpolicy.SharedRand{})
		if !again {
			return "", "", retries, err
		}
		retries++
		select {
		case <-ctx.Done():
			return "", "", retries, fmt.Errorf("%w: %w", ctx.Err(), err)
		case <-time.After(pause):
		}
	}
}

// stop stops the workers and waits for their calls in flight.
func (l *loadGen) stop() {
	l.once.Do(func() { close(l.stopped) })
	l.wg.Wait()
}

// loadCounts is what a loadGen has seen so far.
type loadCounts struct {
	ok, retries int
	failures    []string
	servedBy    map[string]int
	claims      map[string]string
}

func (l *loadGen) counts() loadCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadCounts{ok: l.ok, retries: l.retries, failures: append([]string(nil), l.failures...), servedBy: maps.Clone(l.servedBy),
		claims: maps.Clone(l.claims)}
}

// mbbConfig declares greeter 1.0.0 and 2.0.0, each in its own container with
// create_before_destroy; generation changes the 1.x container's env, which
// replaces it.
func mbbConfig(generation int) string {
	return providerBlock + fmt.Sprintf(`
resource "coexist_service_version" "v1" {
  service = "greeter"
  version = "1.0.0"
  clients = ">= 1.0, < 2.0"
}

resource "coexist_service_version" "v2" {
  service = "greeter"
  version = "2.0.0"
  clients = ">= 2.0, < 3.0"
}

resource "coexist_container" "v1" {
  name     = "mbb-greeter-v1"
  node     = %[1]q
  services = [{ service = "greeter", version = coexist_service_version.v1.version }]
  config = {
    command = %[2]q
    args    = ["--version", "1.0.0"]
    env     = { GENERATION = "%[3]d" }
  }
  health        = { http = "/healthz", interval = "200ms" }
  drain_timeout = "10s"
  lifecycle {
    create_before_destroy = true
  }
}

resource "coexist_container" "v2" {
  name     = "mbb-greeter-v2"
  node     = %[1]q
  services = [{ service = "greeter", version = coexist_service_version.v2.version }]
  config = {
    command = %[2]q
    args    = ["--version", "2.0.0"]
  }
  health        = { http = "/healthz", interval = "200ms" }
  drain_timeout = "10s"
  lifecycle {
    create_before_destroy = true
  }
}
`, accNode, acc.greeter, generation)
}

// Make-before-break: while 1.x and 2.x clients call greeter continuously, a
// change that replaces the 1.x container (create_before_destroy) completes
// with zero failed calls, and the 2.x container keeps its process.
//
// Not parallel: it owns the service name "greeter" while it runs.
func TestAccContainer_makeBeforeBreak(t *testing.T) {
	testAccPreCheck(t)
	resource.Test(t, resource.TestCase{
		ProtoV6ProviderFactories: protoV6Providers,
		CheckDestroy:             checkDestroyed,
		Steps:                    mbbSteps(t, mbbConfig(1), mbbConfig(2), nil, nil),
	})
}

// mbbSteps are the two steps of a make-before-break test: apply first (the
// containers coexist_container.v1 and .v2), then, under load from 1.x and
// 2.x clients, apply second, which must replace v1 before it destroys it
// and leave v2 alone. The second step checks that no call failed, that the
// old and new v1 and v2 all served calls, that the old v1 is gone and that
// v2 kept its process; firstCheck and secondCheck, when set, check more.
func mbbSteps(t *testing.T, first, second string, firstCheck func(s *terraform.State, v1 string) error,
	secondCheck func(s *terraform.State, oldV1, newV1, v2 string, c loadCounts) error) []resource.TestStep {
	v1, v2 := "coexist_container.v1", "coexist_container.v2"
	v2PID := statecheck.CompareValue(compare.ValuesSame())
	var oldV1, v2ID string
	var load *loadGen
	t.Cleanup(func() {
		if load != nil {
			load.stop()
		}
	})
	return []resource.TestStep{
		{
			Config:            first,
			ConfigStateChecks: []statecheck.StateCheck{v2PID.AddStateValue(v2, tfjsonpath.New("pid"))},
			Check: func(s *terraform.State) error {
				oldV1, _ = stateAttr(s, v1, "id")
				v2ID, _ = stateAttr(s, v2, "id")
				if firstCheck != nil {
					return firstCheck(s, oldV1)
				}
				return nil
			},
		},
		{
			PreConfig: func() {
				load = startLoad(acc.gateway, []string{"1.5.0", "2.1.0"}, 2)
				waitFor(t, "the load generator's first calls", 10*time.Second, func() (bool, error) {
					c := load.counts()
					if len(c.failures) > 0 {
						return false, errors.New(c.failures[0])
					}
					return c.ok >= 50, nil
				})
			},
			Config: second,
			ConfigPlanChecks: resource.ConfigPlanChecks{
				PreApply: []plancheck.PlanCheck{
					plancheck.ExpectResourceAction(v1, plancheck.ResourceActionCreateBeforeDestroy),
					plancheck.ExpectResourceAction(v2, plancheck.ResourceActionNoop),
				},
			},
			ConfigStateChecks: []statecheck.StateCheck{v2PID.AddStateValue(v2, tfjsonpath.New("pid"))},
			Check: func(s *terraform.State) error {
				newV1, _ := stateAttr(s, v1, "id")
				// Keep calling a little after the old container is gone.
				time.Sleep(300 * time.Millisecond)
				load.stop()
				c := load.counts()
				served := c.servedBy
				t.Logf("load during the replacement: %d calls ok, %d retries, %d failed; served by %v, greeters claiming %v",
					c.ok, c.retries, len(c.failures), served, c.claims)
				if len(c.failures) > 0 {
					return fmt.Errorf("%d calls failed during make-before-break, first: %s", len(c.failures), c.failures[0])
				}
				if newV1 == oldV1 {
					return fmt.Errorf("container %s was not replaced", oldV1)
				}
				if served[oldV1] == 0 || served[newV1] == 0 || served[v2ID] == 0 {
					return fmt.Errorf("want calls served by the old (%s) and new (%s) 1.x containers and by %s, got %v",
						oldV1, newV1, v2ID, served)
				}
				if _, err := containerOf(oldV1); !api.IsNotFound(err) {
					return fmt.Errorf("old container %s: want 404, got %v", oldV1, err)
				}
				ct, err := containerOf(v2ID)
				if err != nil {
					return err
				}
				if pid, _ := stateAttr(s, v2, "pid"); pid != fmt.Sprint(ct.Status.PID) {
					return fmt.Errorf("2.x container pid %s in state, %d in the registry", pid, ct.Status.PID)
				}
				if secondCheck != nil {
					return secondCheck(s, oldV1, newV1, v2ID, c)
				}
				return nil
			},
		},
	}
}
