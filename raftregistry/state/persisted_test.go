package state

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// TestPersistedForm pins what the Raft log and the snapshots hold: the
// encoded entry of each command and the snapshot of the store they build,
// with every value of every enumerated field of every record kind. A change
// to either (a renamed value, field or tag; a wire constant leaking into the
// store) shows as a diff against testdata/persisted.golden; an intended one
// is written with `go test ./raftregistry/state/ -run TestPersistedForm
// -update` and must come with a migration of old logs and snapshots.
func TestPersistedForm(t *testing.T) {
	f := newFixture(t)
	var log bytes.Buffer
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	started := at(time.Second)
	report := func(id, node string, st api.ContainerStatus) Command {
		return &SetContainerStatus{ID: id, Node: node, Status: StatusFromAPI(&st, at(2*time.Second))}
	}
	g := VersionKey{"greeter", "1.0.0"}
	h := VersionKey{"greeter", "2.0.0"}
	a := VersionKey{"audit", "1.0.0"}
	cmds := []Command{
		&RegisterNode{ID: "n1", Address: "127.0.0.1", Gateway: "127.0.0.1:7780", Labels: map[string]string{"zone": "a"}},
		&RegisterNode{ID: "n2", Address: "127.0.0.2", Gateway: "127.0.0.2:7780"},
		&SetNodeStatus{ID: "n2", Status: NodeDown},
		&DeclareVersion{Service: "greeter", Version: "1.0.0", Clients: ">= 1.0, < 2.0", Description: "first"},
		&DeclareVersion{Service: "greeter", Version: "2.0.0", Clients: ">= 2.0, < 3.0"},
		&DeclareVersion{Service: "audit", Version: "1.0.0", Clients: ">= 0.0.1"},
		&PutContainer{ID: "c1", Spec: ContainerSpec{Name: "c", Node: "n1", Services: []VersionKey{g}, Driver: "exec",
			Command: "/bin/greeter", Args: []string{"-port", "0"}, Env: map[string]string{"A": "1"},
			Health:       &HealthCheck{HTTP: "/health", Interval: time.Second, Timeout: 2 * time.Second},
			Restart:      &RestartPolicy{Attempts: 3, Interval: time.Minute, Delay: time.Second, MaxDelay: 10 * time.Second},
			DrainTimeout: 30 * time.Second}},
		&PutContainer{ID: "c2", Spec: spec("n1", h)},
		&PutContainer{ID: "c3", Spec: spec("n1", g, a)},
		&PutContainer{ID: "c4", Spec: spec("n1", g)},
		&PutContainer{ID: "c5", Spec: ContainerSpec{Node: "n1", Services: []VersionKey{g}, Driver: "exec", Command: "/bin/x",
			Health: &HealthCheck{TCP: true, Interval: time.Second, Timeout: time.Second}}},
		report("c1", "n1", api.ContainerStatus{State: api.ContainerRunning, Endpoint: "127.0.0.1:9000", PID: 42, StartedAt: &started,
			Restarts: 1, Services: []api.ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceServing, Inflight: 2}}}),
		report("c2", "n1", api.ContainerStatus{State: api.ContainerStarting}),
		report("c3", "n1", api.ContainerStatus{State: api.ContainerDraining, Services: []api.ServiceStatus{
			{Service: "greeter", Version: "1.0.0", State: api.ServiceDraining},
			{Service: "audit", Version: "1.0.0", State: api.ServiceDrained}}}),
		report("c4", "n1", api.ContainerStatus{State: api.ContainerFailed, Message: "exit status 1"}),
		report("c5", "n1", api.ContainerStatus{State: api.ContainerStopped}),
		&DeleteContainer{ID: "c4"}, // failed: kept, deleted, until its agent stops it
		&RetireVersion{Service: "greeter", Version: "2.0.0", Now: at(3 * time.Second)},
		&RetireVersion{Service: "audit", Version: "1.0.0", Now: at(3 * time.Second)},
		nil, // MarkRetired of greeter 2.0.0, at its modify index
		&CreateToken{AccessorID: "t1", SecretHash: "h1", Role: RoleFromAPI(api.RoleManagement)},
		&CreateToken{AccessorID: "t2", SecretHash: "h2", Role: RoleFromAPI(api.RoleOperator), Description: "ops"},
		&CreateToken{AccessorID: "t3", SecretHash: "h3", Role: RoleFromAPI(api.RoleAgent), Node: "n1"},
		&CreateToken{AccessorID: "t4", SecretHash: "h4", Role: RoleFromAPI(api.RoleRead)},
		&SetServer{ID: "s1", HTTPAddr: "127.0.0.1:8500"},
	}
	for _, c := range cmds {
		if c == nil {
			c = &MarkRetired{Versions: []RetireDue{{Service: h.Service, Version: h.Version,
				ModifyIndex: f.st.Version(h).ModifyIndex, Reason: "drained"}}, Now: at(4 * time.Second)}
		}
		f.must(c)
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&log, "%02x %s\n", b[0], b[1:])
	}
	var snap bytes.Buffer
	b, err := json.MarshalIndent(f.st.Snapshot(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	snap.Write(b)

	got := "# Raft log: type byte, then the entry\n" + log.String() + "\n# snapshot\n" + snap.String() + "\n"
	path := filepath.Join("testdata", "persisted.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (write it with -update)", err)
	}
	if got != string(want) {
		t.Errorf("the persisted form changed; diff against %s:\n%s", path, lineDiff(string(want), got))
	}

	// Every enumerated value is in it.
	for _, e := range []enum{nodeStatuses, versionStates, desiredStates, containerStates, serviceStates, roles} {
		for _, p := range e {
			if !bytes.Contains([]byte(got), []byte(`"`+p[0]+`"`)) {
				t.Errorf("the golden form holds no %q: add a record with it", p[0])
			}
		}
	}
}

// lineDiff names the first lines that differ.
func lineDiff(want, got string) string {
	w, g := bytes.Split([]byte(want), []byte("\n")), bytes.Split([]byte(got), []byte("\n"))
	var out bytes.Buffer
	for i := 0; i < max(len(w), len(g)) && out.Len() < 4000; i++ {
		var a, b []byte
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if !bytes.Equal(a, b) {
			fmt.Fprintf(&out, "line %d\n  want %s\n  got  %s\n", i+1, a, b)
		}
	}
	return out.String()
}

// TestWireConversion: every persisted value has its wire form and back, and
// the records' wire forms use it, so that a value renamed on either side
// is converted, not copied.
func TestWireConversion(t *testing.T) {
	cases := []struct {
		name string
		e    enum
		wire []string
	}{
		{"node status", nodeStatuses, []string{api.NodeReady, api.NodeDown}},
		{"version state", versionStates, []string{api.VersionActive, api.VersionDraining, api.VersionRetired}},
		{"desired", desiredStates, []string{api.DesiredPresent, api.DesiredDeleted}},
		{"container state", containerStates, []string{api.ContainerStarting, api.ContainerRunning, api.ContainerDraining, api.ContainerStopped, api.ContainerFailed}},
		{"service state", serviceStates, []string{api.ServiceServing, api.ServiceDraining, api.ServiceDrained}},
		{"role", roles, []string{api.RoleManagement, api.RoleOperator, api.RoleAgent, api.RoleRead}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.e) != len(tc.wire) {
				t.Fatalf("%d persisted values for %d wire values", len(tc.e), len(tc.wire))
			}
			for _, w := range tc.wire {
				p := tc.e.fromAPI(w)
				if back := tc.e.toAPI(p); back != w {
					t.Errorf("%q -> %q -> %q", w, p, back)
				}
			}
			if got := tc.e.fromAPI("bogus"); got != "bogus" {
				t.Errorf("an unknown wire value became %q; want it passed on for validation to refuse", got)
			}
		})
	}

	// A record's wire form goes through the table: plant a renamed wire
	// value and see it come out.
	saved := containerStates
	defer func() { containerStates = saved }()
	containerStates = enum{{ContainerRunning, "up"}}
	c := &Container{ID: "c1", Desired: DesiredPresent, Status: &ContainerStatus{State: ContainerRunning}}
	if got := c.API(false).Status.State; got != "up" {
		t.Errorf("Container.API state = %q, want the converted %q", got, "up")
	}
	if got := StatusFromAPI(&api.ContainerStatus{State: "up"}, t0).State; got != ContainerRunning {
		t.Errorf("StatusFromAPI state = %q, want the persisted %q", got, ContainerRunning)
	}
}
