package node

import (
	"strings"
	"testing"
	"time"

	"github.com/coexist-dev/coexist/api"
)

var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func ctr(id string, refs ...string) api.Container {
	c := api.Container{ID: id, Node: "n1", Driver: "exec", Desired: api.DesiredPresent,
		Config: api.DriverConfig{Command: "/bin/greeter"}, DrainTimeout: api.Duration(30 * time.Second)}
	for _, r := range refs {
		s, v, _ := strings.Cut(r, "@")
		c.Services = append(c.Services, api.ServiceRef{Service: s, Version: v})
	}
	return c
}

func deleted(c api.Container) api.Container { c.Desired = api.DesiredDeleted; return c }

// running is a healthy local container whose status was already reported.
func running(c api.Container, versions map[string]string) *Local {
	l := &Local{ID: c.ID, Phase: PhaseRunning, Fingerprint: Fingerprint(&c), PID: 42, Endpoint: "127.0.0.1:21000",
		StartedAt: now.Add(-time.Minute), HealthyOnce: true, Inflight: map[string]int{}}
	st := Status(&c, l, versions)
	l.Reported, l.ReportedAt = &st, now.Add(-time.Second)
	return l
}

func kinds(acts []Action) string {
	var s []string
	for _, a := range acts {
		s = append(s, a.Kind.String()+" "+a.ID)
	}
	return strings.Join(s, ", ")
}

func TestPlan(t *testing.T) {
	cfg := DefaultPlanConfig()
	active := map[string]string{"greeter@1.0.0": "active", "greeter@2.0.0": "active"}
	a, b := ctr("a", "greeter@1.0.0"), ctr("b", "greeter@2.0.0")
	type tc struct {
		name     string
		desired  Desired
		observed Observed
		want     string
		check    func(t *testing.T, acts []Action)
	}
	cases := []tc{
		{name: "new container starts", desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: Observed{}, want: "start a"},
		{name: "a running container is left alone (no restart)",
			desired:  Desired{Containers: []api.Container{a, b}, Versions: active},
			observed: Observed{"a": running(a, active), "b": running(b, active)}, want: ""},
		{name: "adding a container touches no other",
			desired:  Desired{Containers: []api.Container{a, b}, Versions: active},
			observed: Observed{"a": running(a, active)}, want: "start b"},
		{name: "first passing check reports running",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Reported = &api.ContainerStatus{State: api.ContainerStarting}
				return Observed{"a": l}
			}(), want: "report a",
			check: func(t *testing.T, acts []Action) {
				if acts[0].Status.State != api.ContainerRunning {
					t.Fatalf("state = %s", acts[0].Status.State)
				}
			}},
		{name: "no passing check within the start timeout fails it",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: Observed{"a": {ID: "a", Phase: PhaseStarting, Fingerprint: Fingerprint(&a),
				StartedAt: now.Add(-cfg.StartTimeout), Reported: &api.ContainerStatus{State: api.ContainerStarting, Services: []api.ServiceStatus{{Service: "greeter", Version: "1.0.0", State: "serving"}}}}},
			want: "fail a, report a"},
		{name: "still within the start timeout waits",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Phase, l.HealthyOnce, l.StartedAt = PhaseStarting, false, now.Add(-time.Second)
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: ""},
		{name: "deleted with calls in flight drains",
			desired: Desired{Containers: []api.Container{deleted(a)}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Inflight["greeter@1.0.0"] = 2
				return Observed{"a": l}
			}(), want: "drain a"},
		{name: "deleted with nothing in flight still drains first",
			desired:  Desired{Containers: []api.Container{deleted(a)}, Versions: active},
			observed: Observed{"a": running(a, active)}, want: "drain a"},
		{name: "draining reaches zero and stops",
			desired: Desired{Containers: []api.Container{deleted(a)}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Phase, l.DrainStartedAt = PhaseDraining, now.Add(-time.Second)
				l.Reported.State = api.ContainerDraining
				l.Reported.Services[0].State = api.ServiceDraining
				return Observed{"a": l}
			}(), want: "stop a, report a"},
		{name: "draining past its timeout stops with calls in flight",
			desired: Desired{Containers: []api.Container{deleted(a)}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Phase, l.DrainStartedAt = PhaseDraining, now.Add(-31*time.Second)
				l.Inflight["greeter@1.0.0"] = 1
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: "stop a",
			check: func(t *testing.T, acts []Action) {
				if !strings.Contains(acts[0].Reason, "drain timeout") {
					t.Fatalf("reason = %q", acts[0].Reason)
				}
			}},
		{name: "draining within its timeout waits",
			desired: Desired{Containers: []api.Container{deleted(a)}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Phase, l.DrainStartedAt = PhaseDraining, now.Add(-time.Second)
				l.Inflight["greeter@1.0.0"] = 1
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: ""},
		{name: "every version retired stops the container",
			desired:  Desired{Containers: []api.Container{a}, Versions: map[string]string{"greeter@1.0.0": "retired"}},
			observed: Observed{"a": running(a, active)}, want: "drain a, report a"},
		{name: "one of two versions retired keeps the container",
			desired: Desired{Containers: []api.Container{ctr("m", "greeter@1.0.0", "orders@1.0.0")},
				Versions: map[string]string{"greeter@1.0.0": "retired", "orders@1.0.0": "active"}},
			observed: func() Observed {
				c := ctr("m", "greeter@1.0.0", "orders@1.0.0")
				return Observed{"m": running(c, map[string]string{})}
			}(), want: "report m",
			check: func(t *testing.T, acts []Action) {
				st := acts[0].Status
				if st.State != api.ContainerRunning || st.Services[0].State != api.ServiceDrained || st.Services[1].State != api.ServiceServing {
					t.Fatalf("status = %+v", st)
				}
			}},
		{name: "a draining version reports draining while calls are in flight",
			desired: Desired{Containers: []api.Container{a}, Versions: map[string]string{"greeter@1.0.0": "draining"}},
			observed: func() Observed {
				l := running(a, active)
				l.Inflight["greeter@1.0.0"] = 1
				return Observed{"a": l}
			}(), want: "report a",
			check: func(t *testing.T, acts []Action) {
				if s := acts[0].Status.Services[0]; s.State != api.ServiceDraining || s.Inflight != 1 {
					t.Fatalf("service status = %+v", s)
				}
			}},
		{name: "a draining version with nothing in flight reports drained",
			desired:  Desired{Containers: []api.Container{a}, Versions: map[string]string{"greeter@1.0.0": "draining"}},
			observed: Observed{"a": running(a, active)}, want: "report a",
			check: func(t *testing.T, acts []Action) {
				if s := acts[0].Status.Services[0]; s.State != api.ServiceDrained {
					t.Fatalf("service status = %+v", s)
				}
			}},
		{name: "wanted again while draining resumes",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Phase, l.DrainStartedAt = PhaseDraining, now.Add(-time.Second)
				l.Inflight["greeter@1.0.0"] = 1
				return Observed{"a": l}
			}(), want: "resume a, report a"},
		{name: "rollback: a stopped container whose version is declared again starts",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: Observed{"a": {ID: "a", Phase: PhaseStopped, Fingerprint: Fingerprint(&a),
				Reported: &api.ContainerStatus{State: api.ContainerStopped}}}, want: "start a"},
		{name: "a stopped container of a retired version stays stopped",
			desired: Desired{Containers: []api.Container{a}, Versions: map[string]string{"greeter@1.0.0": "retired"}},
			observed: func() Observed {
				l := &Local{ID: "a", Phase: PhaseStopped, Fingerprint: Fingerprint(&a)}
				st := Status(&a, l, nil)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: ""},
		{name: "an exited container restarts after its backoff",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: Observed{"a": {ID: "a", Phase: PhaseExited, Fingerprint: Fingerprint(&a), ExitedAt: now.Add(-time.Second),
				ExitCode: 3, Failures: 1, Reported: &api.ContainerStatus{State: api.ContainerFailed}}},
			want: "start a"},
		{name: "an exited container waits out its backoff",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := &Local{ID: "a", Phase: PhaseExited, Fingerprint: Fingerprint(&a), ExitedAt: now.Add(-time.Second), Failures: 2}
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: ""},
		{name: "restarts exhausted: no more starts",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := &Local{ID: "a", Phase: PhaseExited, Fingerprint: Fingerprint(&a), ExitedAt: now.Add(-time.Hour), Failures: cfg.RestartAttempts}
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: ""},
		{name: "a spec changed with cas replaces the process",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Fingerprint = "old"
				return Observed{"a": l}
			}(), want: "stop a"},
		{name: "a container the registry dropped is stopped, then forgotten",
			desired:  Desired{Versions: active},
			observed: Observed{"a": running(a, active), "z": {ID: "z", Phase: PhaseStopped}}, want: "stop a, forget z"},
		{name: "a deleted container never started here is reported stopped",
			desired: Desired{Containers: []api.Container{deleted(a)}, Versions: active}, observed: Observed{},
			want: "report a",
			check: func(t *testing.T, acts []Action) {
				if acts[0].Status.State != api.ContainerStopped {
					t.Fatalf("state = %s", acts[0].Status.State)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			acts := Plan(c.desired, c.observed, now, cfg)
			if got := kinds(acts); got != kindsWant(c.want) {
				t.Fatalf("plan = %q, want %q (%v)", got, c.want, acts)
			}
			if c.check != nil {
				c.check(t, acts)
			}
		})
	}
}

func kindsWant(s string) string { return s }

func TestPlanIsDeterministic(t *testing.T) {
	cfg := DefaultPlanConfig()
	active := map[string]string{"greeter@1.0.0": "active"}
	var cs []api.Container
	o := Observed{}
	for _, id := range []string{"e", "b", "d", "a", "c"} {
		c := ctr(id, "greeter@1.0.0")
		cs = append(cs, c)
		if id < "c" {
			o[id] = running(c, active)
		}
	}
	first := kinds(Plan(Desired{Containers: cs, Versions: active}, o, now, cfg))
	for range 20 {
		if got := kinds(Plan(Desired{Containers: cs, Versions: active}, o, now, cfg)); got != first {
			t.Fatalf("plan changed between runs: %q vs %q", got, first)
		}
	}
	if first != "start c, start d, start e" {
		t.Fatalf("plan = %q", first)
	}
}

func TestInflightAloneIsReportedPeriodically(t *testing.T) {
	cfg := DefaultPlanConfig()
	active := map[string]string{"greeter@1.0.0": "active"}
	a := ctr("a", "greeter@1.0.0")
	l := running(a, active)
	l.Inflight["greeter@1.0.0"] = 7
	if acts := Plan(Desired{Containers: []api.Container{a}, Versions: active}, Observed{"a": l}, now, cfg); len(acts) != 0 {
		t.Fatalf("reported in-flight counts before the interval: %v", acts)
	}
	l.ReportedAt = now.Add(-cfg.InflightReportInterval)
	acts := Plan(Desired{Containers: []api.Container{a}, Versions: active}, Observed{"a": l}, now, cfg)
	if len(acts) != 1 || acts[0].Kind != ActReport || acts[0].Status.Services[0].Inflight != 7 {
		t.Fatalf("plan = %v", acts)
	}
}
