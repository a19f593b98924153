package routing

import (
	"errors"
	"fmt"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// TestAdmitNamedAmongMany names each of many containers of one version (past
// indexAfter, where the table keeps an id index): each is admitted as
// itself, and an unknown one is refused as retry-safe.
func TestAdmitNamedAmongMany(t *testing.T) {
	services := []api.Service{{Name: "greeter", Versions: []api.ServiceVersion{
		{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0", State: api.VersionActive}}}}
	nodes := []api.Node{{ID: "n1", Gateway: "g1", Status: api.NodeReady}, {ID: "n2", Gateway: "g2", Status: api.NodeReady}}
	var cs []api.Container
	for i := range 3 * indexAfter {
		node := "n1"
		if i%2 == 1 {
			node = "n2"
		}
		cs = append(cs, api.Container{ID: fmt.Sprintf("c%03d", i), Node: node, Desired: api.DesiredPresent,
			Services: []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}},
			Status:   &api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:1"}})
	}
	tab := NewTable(services, cs, nodes)
	c, err := ParseClient("web", "1.2.0", nil, "n1")
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range cs {
		d, r, err := Admit(tab, c, "greeter", ct.ID, nil)
		if d != DecisionForward || err != nil || r.Primary().ID != ct.ID {
			t.Fatalf("Admit(%s) = %s, %s, %v", ct.ID, d, r.Primary().ID, err)
		}
	}
	d, _, err := Admit(tab, c, "greeter", "nope", nil)
	if d != DecisionRefuseRetry || !errors.Is(err, ErrStaleContainer) {
		t.Fatalf("Admit(unknown) = %s, %v", d, err)
	}
}
