package routing

import (
	"fmt"
	"math/rand/v2"
	"testing"

	version "github.com/hashicorp/go-version"

	"github.com/coexist-dev/coexist/api"
)

const (
	benchServices   = 50
	benchVersions   = 10
	benchContainers = 20 // per version
	benchNodes      = 10
)

// benchTable is 50 services × 10 versions × 20 containers per version, spread
// over 10 nodes. Version k.0.0 serves clients ">= k-1.0, < k+1.0"; the top
// version is draining, so that Select walks past it.
func benchTable(b *testing.B) (*Table, []string) {
	b.Helper()
	services, containers, nodes, names := benchInput()
	return NewTable(services, containers, nodes), names
}

func benchInput() ([]api.Service, []api.Container, []api.Node, []string) {
	rnd := rand.New(rand.NewPCG(7, 7))
	var nodes []api.Node
	for n := range benchNodes {
		nodes = append(nodes, api.Node{ID: fmt.Sprintf("n%02d", n), Gateway: fmt.Sprintf("10.0.0.%d:7800", n), Status: api.NodeReady})
	}
	var services []api.Service
	var containers []api.Container
	names := make([]string, 0, benchServices)
	for s := range benchServices {
		name := fmt.Sprintf("svc%02d", s)
		names = append(names, name)
		svc := api.Service{Name: name}
		for v := 1; v <= benchVersions; v++ {
			state := api.VersionActive
			if v == benchVersions {
				state = api.VersionDraining
			}
			ver := fmt.Sprintf("%d.0.0", v)
			svc.Versions = append(svc.Versions, api.ServiceVersion{
				Service: name, Version: ver, State: state,
				Clients: fmt.Sprintf(">= %d.0, < %d.0", v-1, v+1),
			})
			for c := range benchContainers {
				containers = append(containers, api.Container{
					ID:       fmt.Sprintf("%s-%d-%02d", name, v, c),
					Node:     nodes[c%benchNodes].ID,
					Services: []api.ServiceRef{{Service: name, Version: ver}},
					Desired:  api.DesiredPresent,
					Status: &api.ContainerStatus{
						State:    api.ContainerRunning,
						Endpoint: fmt.Sprintf("127.0.0.1:%d", 21000+c),
						Services: []api.ServiceStatus{{Service: name, Version: ver, State: api.ServiceServing, Inflight: rnd.IntN(10)}},
					},
				})
			}
		}
		services = append(services, svc)
	}
	return services, containers, nodes, names
}

func benchClient(b *testing.B, node string, requires map[string]string) Client {
	b.Helper()
	c, err := ParseClient("web", "5.3.0", requires, node)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func runSelect(b *testing.B, t *Table, names []string, c Client) {
	rnd := rand.New(rand.NewPCG(1, 2))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, err := Select(t, c, names[i%len(names)], rnd)
		if err != nil || r.Version != "6.0.0" {
			b.Fatalf("Select = %s, %v", r.Version, err)
		}
		i++
	}
}

// BenchmarkSelect is the hot path of the SDK: a client on a node, two
// containers of the chosen version on that node.
func BenchmarkSelect(b *testing.B) {
	t, names := benchTable(b)
	runSelect(b, t, names, benchClient(b, "n03", nil))
}

// BenchmarkSelectAnyNode: no own-node containers; two choices among 20.
func BenchmarkSelectAnyNode(b *testing.B) {
	t, names := benchTable(b)
	runSelect(b, t, names, benchClient(b, "", nil))
}

// BenchmarkSelectRequirement: a requirement on every service.
func BenchmarkSelectRequirement(b *testing.B) {
	t, names := benchTable(b)
	req := make(map[string]string, len(names))
	for _, n := range names {
		req[n] = "~> 6.0"
	}
	runSelect(b, t, names, benchClient(b, "n03", req))
}

// BenchmarkSelectLiteralClient: a Client not built by ParseClient or
// NewClient falls back to go-version, which allocates.
func BenchmarkSelectLiteralClient(b *testing.B) {
	t, names := benchTable(b)
	runSelect(b, t, names, Client{Name: "web", Version: version.Must(version.NewVersion("5.3.0")), Node: "n03"})
}

// BenchmarkNewTable: what a registry change costs a client, for the table of
// BenchmarkSelect.
func BenchmarkNewTable(b *testing.B) {
	services, containers, nodes, _ := benchInput()
	b.ReportAllocs()
	for b.Loop() {
		NewTable(services, containers, nodes)
	}
}
