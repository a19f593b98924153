package reconcile

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
				ExitCode: 3, Exits: []time.Time{now.Add(-time.Second)}, Reported: &api.ContainerStatus{State: api.ContainerStarting}}},
			want: "start a"},
		{name: "an exited container waits out its backoff, reported starting",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: Observed{"a": {ID: "a", Phase: PhaseExited, Fingerprint: Fingerprint(&a), PID: 42, ExitedAt: now.Add(-time.Second),
				Exits: []time.Time{now.Add(-time.Minute), now.Add(-time.Second)}, Reported: &api.ContainerStatus{State: api.ContainerRunning}}},
			want: "report a",
			check: func(t *testing.T, acts []Action) {
				if st := acts[0].Status; st.State != api.ContainerStarting || st.PID != 0 {
					t.Fatalf("between restarts: %+v; want starting without a pid (failed is for good)", st)
				}
			}},
		{name: "restarts used up within the interval: failed for good",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				var exits []time.Time
				for i := cfg.RestartAttempts; i >= 0; i-- {
					exits = append(exits, now.Add(-time.Duration(i)*time.Minute))
				}
				l := &Local{ID: "a", Phase: PhaseExited, Fingerprint: Fingerprint(&a), ExitedAt: now, Exits: exits}
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: "fail a",
			check: func(t *testing.T, acts []Action) {
				if !strings.Contains(acts[0].Reason, "5 restart attempts within 30m0s used up") {
					t.Fatalf("reason = %q", acts[0].Reason)
				}
			}},
		{name: "a failed container stays failed, with nothing to do",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := &Local{ID: "a", Phase: PhaseFailed, Fingerprint: Fingerprint(&a), Exits: []time.Time{now.Add(-time.Hour)}}
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: ""},
		{name: "a spec changed with cas drains the process first",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Fingerprint = "old"
				return Observed{"a": l}
			}(), want: "drain a"},
		{name: "a spec changed with cas stops the process once drained",
			desired: Desired{Containers: []api.Container{a}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Fingerprint, l.Phase, l.DrainStartedAt = "old", PhaseDraining, now.Add(-time.Second)
				st := Status(&a, l, active)
				l.Reported = &st
				return Observed{"a": l}
			}(), want: "stop a"},
		{name: "a container the registry dropped is drained, then forgotten once stopped",
			desired:  Desired{Versions: active},
			observed: Observed{"a": running(a, active), "z": {ID: "z", Phase: PhaseStopped}}, want: "drain a, forget z"},
		{name: "a dropped container waits for its calls in flight",
			desired: Desired{Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Phase, l.DrainStartedAt, l.DrainTimeout = PhaseDraining, now.Add(-time.Second), 20*time.Second
				l.Inflight["greeter@1.0.0"] = 1
				return Observed{"a": l}
			}(), want: ""},
		{name: "a dropped container stops at its drain timeout",
			desired: Desired{Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Phase, l.DrainStartedAt, l.DrainTimeout = PhaseDraining, now.Add(-20*time.Second), 20*time.Second
				l.Inflight["greeter@1.0.0"] = 1
				return Observed{"a": l}
			}(), want: "stop a"},
		{name: "a container on a retired version the registry holds as stopped is not reported again",
			desired: Desired{Containers: []api.Container{func() api.Container {
				c := a
				c.Status = &api.ContainerStatus{State: api.ContainerStopped,
					Services: []api.ServiceStatus{{Service: "greeter", Version: "1.0.0", State: api.ServiceDrained}}}
				return c
			}()}, Versions: map[string]string{"greeter@1.0.0": "retired"}},
			observed: Observed{}, want: ""},
		{name: "a restarted agent does not report what the registry holds",
			desired: Desired{Containers: []api.Container{func() api.Container {
				c := a
				st := Status(&c, running(a, active), active)
				c.Status = &st
				return c
			}()}, Versions: active},
			observed: func() Observed {
				l := running(a, active)
				l.Reported = nil
				return Observed{"a": l}
			}(), want: ""},
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

// TestCallsPerMinuteReportedWhenMarked: calls per minute alone are
// reported after the in-flight interval, and only when they changed
// markedly; a container idle since its last report reports nothing.
func TestCallsPerMinuteReportedWhenMarked(t *testing.T) {
	cfg := DefaultPlanConfig()
	active := map[string]string{"greeter@1.0.0": "active"}
	a := ctr("a", "greeter@1.0.0")
	l := running(a, active)
	plan := func() []Action {
		return Plan(Desired{Containers: []api.Container{a}, Versions: active}, Observed{"a": l}, now, cfg)
	}
	l.ReportedAt = now.Add(-cfg.InflightReportInterval)
	if acts := plan(); len(acts) != 0 {
		t.Fatalf("an idle container reported: %v", acts)
	}
	l.CallsPerMinute = map[string]int{"greeter@1.0.0": 100}
	l.ReportedAt = now.Add(-cfg.InflightReportInterval / 2)
	if acts := plan(); len(acts) != 0 {
		t.Fatalf("reported calls per minute before the interval: %v", acts)
	}
	l.ReportedAt = now.Add(-cfg.InflightReportInterval)
	acts := plan()
	if len(acts) != 1 || acts[0].Kind != ActReport || acts[0].Status.Services[0].CallsPerMinute != 100 {
		t.Fatalf("plan = %v, want a report of 100 calls per minute", acts)
	}
	l.Reported = acts[0].Status
	for _, tc := range []struct {
		calls  int
		report bool
	}{{100, false}, {105, false}, {95, false}, {111, true}, {89, true}, {0, true}} {
		l.CallsPerMinute = map[string]int{"greeter@1.0.0": tc.calls}
		if acts := plan(); (len(acts) == 1) != tc.report {
			t.Errorf("100 → %d calls per minute: plan %v, want a report: %v", tc.calls, acts, tc.report)
		}
	}
}

// TestNextRestart: attempts count the exits within the interval, passing
// health checks in between or not; the delay doubles per exit within it up
// to the maximum; one exit more than the attempts fails the container.
func TestNextRestart(t *testing.T) {
	rule := RestartRule{Attempts: 3, Interval: time.Minute, Delay: time.Second, MaxDelay: 3 * time.Second}
	at := func(secs ...int) []time.Time {
		var out []time.Time
		for _, s := range secs {
			out = append(out, now.Add(time.Duration(s)*time.Second))
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		rule  RestartRule
		exits []time.Time
		delay time.Duration // after the last exit; -1: failed
	}{
		{"first exit: the delay", rule, at(0), time.Second},
		{"second within the interval: doubled", rule, at(0, 5), 2 * time.Second},
		{"third: doubled again, capped at the maximum", rule, at(0, 5, 10), 3 * time.Second},
		{"fourth within the interval: attempts used up", rule, at(0, 5, 10, 15), -1},
		{"healthy for a while in between changes nothing", rule, at(0, 20, 40, 59), -1},
		{"exits older than the interval do not count", rule, at(0, 5, 10, 70), time.Second},
		{"an exit exactly one interval before does not count", rule, at(0, 60), time.Second},
		{"a long interval counts them all", RestartRule{Attempts: 2, Interval: time.Hour, Delay: time.Second, MaxDelay: time.Minute},
			at(0, 1000, 2000), -1},
		{"the maximum below the delay wins", RestartRule{Attempts: 1, Interval: time.Minute, Delay: 5 * time.Second, MaxDelay: time.Second},
			at(0), time.Second},
		{"no exit: at once", rule, nil, 0},
		{"no interval counts every exit", RestartRule{Attempts: 1, Delay: time.Second, MaxDelay: time.Minute},
			at(0, 100000), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NextRestart(tc.rule, tc.exits)
			switch {
			case tc.delay < 0 && ok:
				t.Fatalf("restart at %v; want failed for good", got)
			case tc.delay < 0:
			case !ok:
				t.Fatalf("failed; want a restart after %s", tc.delay)
			case len(tc.exits) == 0 && !got.IsZero():
				t.Fatalf("restart at %v; want at once", got)
			case len(tc.exits) > 0 && got.Sub(tc.exits[len(tc.exits)-1]) != tc.delay:
				t.Fatalf("restart after %s; want %s", got.Sub(tc.exits[len(tc.exits)-1]), tc.delay)
			}
		})
	}
}

// TestRestartRuleOf: the container's policy wins field by field over the
// agent's defaults.
func TestRestartRuleOf(t *testing.T) {
	cfg := DefaultPlanConfig()
	c := ctr("a", "greeter@1.0.0")
	if got := restartRuleOf(&c, cfg); got != (RestartRule{Attempts: 5, Interval: 30 * time.Minute, Delay: time.Second, MaxDelay: 30 * time.Second}) {
		t.Fatalf("defaults: %+v", got)
	}
	c.Restart = &api.RestartPolicy{Attempts: 2, Interval: api.Duration(time.Minute)}
	if got := restartRuleOf(&c, cfg); got != (RestartRule{Attempts: 2, Interval: time.Minute, Delay: time.Second, MaxDelay: 30 * time.Second}) {
		t.Fatalf("policy: %+v", got)
	}
}

func TestRecordExitKeepsWhatCanCount(t *testing.T) {
	var exits []time.Time
	for i := range maxExitsKept + 10 {
		exits = RecordExit(exits, now.Add(time.Duration(i)*time.Second))
	}
	if len(exits) != maxExitsKept || !exits[len(exits)-1].Equal(now.Add(time.Duration(maxExitsKept+9)*time.Second)) {
		t.Fatalf("kept %d exits, last %v", len(exits), exits[len(exits)-1])
	}
}
