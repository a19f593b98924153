package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

func TestPrintCensusAndLagging(t *testing.T) {
	cs := &api.Census{
		Complete: true,
		Cohorts:  []api.Cohort{{Name: "web", Version: "1.5.0", Instances: 3, Calls: []string{"orders", "users"}}},
		Watchers: []api.Watcher{
			{Instance: "a1", Kind: "agent", Name: "agent", Version: "n1", Server: "s1",
				Tables: []api.WatcherTable{{Table: "services", Index: 40}}},
			{Instance: "w1", Kind: "client", Name: "web", Version: "1.5.0", Server: "s2",
				Tables: []api.WatcherTable{{Table: "services", Index: 37, Lag: 3, LagTime: api.Duration(1500 * time.Millisecond)}}},
		},
	}
	var b bytes.Buffer
	if err := printCensus(&b, cs); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"web@1.5.0  3          orders, users", "agent@n1", "w1", "3 (1.5s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("census output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if err := printLagging(&b, cs); err != nil {
		t.Fatal(err)
	}
	out = b.String()
	if !strings.Contains(out, "Watchers:   2 live (1 lagging)") || !strings.Contains(out, "web@1.5.0") || strings.Contains(out, "agent@n1") {
		t.Errorf("status lists the wrong lagging watchers:\n%s", out)
	}
}
