package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// Phase is where a container stands on this node, as the agent sees it.
type Phase string

// The phases of a local container.
const (
	// PhaseStarting: the process runs, its first health check has not passed.
	PhaseStarting Phase = "starting"
	// PhaseRunning: healthy and routable.
	PhaseRunning Phase = "running"
	// PhaseUnhealthy: it passed a check once, now fails them; not routable.
	PhaseUnhealthy Phase = "unhealthy"
	// PhaseDraining: no new calls; waiting for in-flight calls to finish.
	PhaseDraining Phase = "draining"
	// PhaseStopping: told to stop, not yet exited.
	PhaseStopping Phase = "stopping"
	// PhaseStopped: stopped on purpose.
	PhaseStopped Phase = "stopped"
	// PhaseExited: exited on its own; restarted after a backoff, or failed
	// when its restart policy's attempts are used up.
	PhaseExited Phase = "exited"
	// PhaseFailed: never became healthy, or exhausted its restarts.
	PhaseFailed Phase = "failed"
)

// Local is the agent's record of one container on its node. The agent
// changes it as actions are carried out and events arrive; Plan only reads it.
type Local struct {
	ID    string
	Phase Phase
	// Fingerprint identifies the spec the process was started from, so a
	// spec changed with ?cas= replaces the process.
	Fingerprint string
	PID         int
	Endpoint    string
	StartedAt   time.Time
	// HealthyOnce is true once a health check has passed since the start.
	HealthyOnce bool
	// ExitedAt and ExitCode are set when the process exited on its own.
	ExitedAt time.Time
	ExitCode int
	// Restarts counts restarts after exits. Exits holds the times of its
	// latest exits, oldest first (RecordExit): the restart policy counts
	// those within its interval, so a container that crashes after it
	// became healthy uses its attempts up too.
	Restarts int
	Exits    []time.Time
	// DrainStartedAt is when the container as a whole began to drain.
	DrainStartedAt time.Time
	// DrainTimeout is the container's drain timeout when it started, for a
	// container the registry no longer lists (its node was purged).
	DrainTimeout time.Duration
	// Inflight is the number of calls in flight per "service@version".
	Inflight map[string]int
	// CallsPerMinute is the calls passed to each "service@version" in the
	// last minute (inflight.Minute), for display; nil: none.
	CallsPerMinute map[string]int
	// Message is a human-readable note for the report (an exit, a failed
	// health check with the process's last output lines).
	Message string
	// Reported is the status last accepted by the registry, at ReportedAt.
	Reported   *api.ContainerStatus
	ReportedAt time.Time
}

// Observed is every container the agent knows of on its node, by id.
type Observed map[string]*Local

// Desired is what the registry wants on this node.
type Desired struct {
	// Containers are the registry's containers for this node.
	Containers []api.Container
	// Versions gives each service version's state ("active", "draining",
	// "retired") by "service@version". A version missing here is treated
	// as active: the registry refuses containers of undeclared versions.
	Versions map[string]string
}

// PlanConfig holds the timings Plan applies.
type PlanConfig struct {
	// StartTimeout is how long a started container may take to pass its
	// first health check before it is reported failed and stopped.
	StartTimeout time.Duration
	// KillTimeout is the grace between SIGTERM and SIGKILL.
	KillTimeout time.Duration
	// RestartDelay, RestartMaxDelay, RestartAttempts and RestartInterval
	// are the defaults for what a container's restart policy leaves out.
	RestartDelay    time.Duration
	RestartMaxDelay time.Duration
	RestartAttempts int
	RestartInterval time.Duration
	// InflightReportInterval is how often changed in-flight counts and
	// markedly changed calls per minute (DisplayChanged) alone are reported
	// (they are for display; drains are decided on the node).
	InflightReportInterval time.Duration
}

// DefaultPlanConfig returns the agent's default timings.
func DefaultPlanConfig() PlanConfig {
	return PlanConfig{StartTimeout: 30 * time.Second, KillTimeout: 5 * time.Second,
		RestartDelay: time.Second, RestartMaxDelay: 30 * time.Second, RestartAttempts: 5,
		RestartInterval: 30 * time.Minute, InflightReportInterval: 10 * time.Second}
}

// ActionKind says what an action does.
type ActionKind uint8

// The actions.
const (
	// ActStart starts the container's process (a start or a restart).
	ActStart ActionKind = iota + 1
	// ActDrain stops admitting new calls to the container.
	ActDrain
	// ActStop stops the process (SIGTERM, then SIGKILL after Grace).
	ActStop
	// ActFail stops a container that never became healthy and marks it
	// failed.
	ActFail
	// ActReport sends Status to the registry.
	ActReport
	// ActForget drops the local record of a container the registry no
	// longer has and that is stopped.
	ActForget
	// ActResume takes a draining container back into service: it is
	// wanted again (a version declared again, a delete cancelled) and
	// never stopped.
	ActResume
)

var actionNames = map[ActionKind]string{ActStart: "start", ActDrain: "drain", ActStop: "stop",
	ActFail: "fail", ActReport: "report", ActForget: "forget", ActResume: "resume"}

func (k ActionKind) String() string { return actionNames[k] }

// Action is one step of a plan.
type Action struct {
	Kind ActionKind
	ID   string
	// Container is the desired container, for ActStart.
	Container *api.Container
	// Status is the report, for ActReport.
	Status *api.ContainerStatus
	// Grace is the time between SIGTERM and SIGKILL, for ActStop.
	Grace  time.Duration
	Reason string
}

func (a Action) String() string {
	if a.Reason != "" {
		return fmt.Sprintf("%s %s (%s)", a.Kind, a.ID, a.Reason)
	}
	return fmt.Sprintf("%s %s", a.Kind, a.ID)
}

// Plan compares what the registry wants on this node with what runs, at time
// now, and returns the actions that bring them together, in container id
// order. It is pure: the same inputs give the same plan, and a container's
// actions depend only on that container, its versions and the config.
func Plan(d Desired, o Observed, now time.Time, cfg PlanConfig) []Action {
	var out []Action
	seen := make(map[string]bool, len(d.Containers))
	desired := slices.Clone(d.Containers)
	slices.SortFunc(desired, func(a, b api.Container) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	for i := range desired {
		c := &desired[i]
		seen[c.ID] = true
		out = append(out, planOne(c, o[c.ID], d.Versions, now, cfg)...)
	}
	var gone []string
	for id := range o {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	for _, id := range gone {
		out = append(out, planGone(o[id], now, cfg)...)
	}
	return out
}

// planGone handles a container the registry no longer lists (its node was
// purged, or it was reaped after this agent reported it stopped): drain and
// stop it if it still runs, then forget it.
func planGone(l *Local, now time.Time, cfg PlanConfig) []Action {
	switch l.Phase {
	case PhaseStopped, PhaseFailed, PhaseExited:
		return []Action{{Kind: ActForget, ID: l.ID, Reason: "no longer in the registry"}}
	}
	timeout := l.DrainTimeout
	if timeout <= 0 {
		timeout = defaultDrainTimeout
	}
	return drainThenStop(l, "no longer in the registry", timeout, now, cfg)
}

// defaultDrainTimeout is the registry's default drain timeout, for a
// container whose own is not known (one re-adopted by an agent before it
// kept drain timeouts).
const defaultDrainTimeout = 30 * time.Second

func planOne(c *api.Container, l *Local, versions map[string]string, now time.Time, cfg PlanConfig) []Action {
	want := wanted(c, versions)
	fp := Fingerprint(c)
	var acts []Action
	switch {
	case l == nil:
		if want {
			acts = append(acts, Action{Kind: ActStart, ID: c.ID, Container: c, Reason: "new"})
			return acts
		}
		// Nothing runs and nothing should: report it stopped (a deleted
		// container never started here, or all its versions are retired),
		// so the registry can reap it.
		return reportIfChanged(c, &Local{ID: c.ID, Phase: PhaseStopped}, versions, now, cfg, acts)

	case !want:
		acts = append(acts, stopUnwanted(c, l, versions, now, cfg)...)
		if l.Phase == PhaseExited || l.Phase == PhaseFailed {
			// Not running and not wanted: that is stopped, for the
			// registry, which can then retire its versions or reap it.
			stopped := *l
			stopped.Phase = PhaseStopped
			return reportIfChanged(c, &stopped, versions, now, cfg, acts)
		}

	case l.Fingerprint != "" && l.Fingerprint != fp && l.Phase != PhaseStopped && l.Phase != PhaseFailed && l.Phase != PhaseExited:
		// What runs changed under ?cas= (a registry of today refuses
		// that, docs/design.md §5; an older log may hold it): replace the
		// process, draining it first as every stop does.
		acts = append(acts, drainThenStop(l, "spec changed", c.DrainTimeout.Std(), now, cfg)...)

	default:
		switch l.Phase {
		case PhaseStopped:
			acts = append(acts, Action{Kind: ActStart, ID: c.ID, Container: c, Reason: "wanted again"})
			return acts
		case PhaseFailed:
			if l.Fingerprint != fp {
				acts = append(acts, Action{Kind: ActStart, ID: c.ID, Container: c, Reason: "spec changed"})
				return acts
			}
		case PhaseExited:
			rule := restartRuleOf(c, cfg)
			at, ok := NextRestart(rule, l.Exits)
			switch {
			case !ok:
				acts = append(acts, Action{Kind: ActFail, ID: c.ID, Grace: cfg.KillTimeout,
					Reason: fmt.Sprintf("exited with code %d, its %d restart attempts within %s used up", l.ExitCode, rule.Attempts, rule.Interval)})
			case !now.Before(at):
				acts = append(acts, Action{Kind: ActStart, ID: c.ID, Container: c,
					Reason: fmt.Sprintf("restart %d after exit code %d", l.Restarts+1, l.ExitCode)})
				return acts
			}
		case PhaseStarting:
			if !l.HealthyOnce && now.Sub(l.StartedAt) >= startTimeout(c, cfg) {
				acts = append(acts, Action{Kind: ActFail, ID: c.ID, Grace: cfg.KillTimeout,
					Reason: fmt.Sprintf("no passing health check within %s", startTimeout(c, cfg))})
			}
		case PhaseDraining:
			// Wanted again while draining (a version declared again, the
			// delete cancelled): it never stopped, so it serves again.
			acts = append(acts, Action{Kind: ActResume, ID: c.ID, Reason: "wanted again while draining"})
		}
	}
	return reportIfChanged(c, l, versions, now, cfg, acts)
}

// stopUnwanted drains a container that should not run, then stops it.
func stopUnwanted(c *api.Container, l *Local, versions map[string]string, now time.Time, cfg PlanConfig) []Action {
	return drainThenStop(l, stopReason(c), c.DrainTimeout.Std(), now, cfg)
}

// drainThenStop is the one way a running container stops: drain, then stop
// once nothing is in flight or the drain timeout has passed.
func drainThenStop(l *Local, reason string, drainTimeout time.Duration, now time.Time, cfg PlanConfig) []Action {
	switch l.Phase {
	case PhaseStarting, PhaseRunning, PhaseUnhealthy:
		// Always drain first, even with nothing in flight: the gateway
		// must stop admitting calls (the agent publishes a table without
		// the container) before the in-flight count that allows the stop
		// is read.
		return []Action{{Kind: ActDrain, ID: l.ID, Reason: reason}}
	case PhaseDraining:
		if n := totalInflight(l); n == 0 {
			return []Action{{Kind: ActStop, ID: l.ID, Grace: cfg.KillTimeout, Reason: "drained"}}
		} else if now.Sub(l.DrainStartedAt) >= drainTimeout {
			return []Action{{Kind: ActStop, ID: l.ID, Grace: cfg.KillTimeout,
				Reason: fmt.Sprintf("drain timeout %s passed with %d calls in flight", drainTimeout, n)}}
		}
	}
	return nil
}

func stopReason(c *api.Container) string {
	if c.Desired == api.DesiredDeleted {
		return "deleted"
	}
	return "every version it holds is retired"
}

// wanted reports whether the container should run: it is not deleted and
// holds at least one version that is not retired.
func wanted(c *api.Container, versions map[string]string) bool {
	if c.Desired == api.DesiredDeleted {
		return false
	}
	for _, ref := range c.Services {
		if versions[ref.String()] != api.VersionRetired {
			return true
		}
	}
	return false
}

func totalInflight(l *Local) int {
	n := 0
	for _, v := range l.Inflight {
		n += v
	}
	return n
}

// startTimeout is how long a container may take to become healthy: the
// agent's StartTimeout, and never less than ten health intervals.
func startTimeout(c *api.Container, cfg PlanConfig) time.Duration {
	t := cfg.StartTimeout
	if c.Health != nil {
		t = max(t, 10*c.Health.Interval.Std())
	}
	return t
}

// RestartRule is a container's restart policy with the agent's defaults
// filled in (Nomad's restart block, in its "fail" mode).
type RestartRule struct {
	// Attempts is how many restarts are allowed within Interval.
	Attempts int
	Interval time.Duration
	// Delay is the wait before the first restart within Interval; it
	// doubles for each further one, up to MaxDelay.
	Delay    time.Duration
	MaxDelay time.Duration
}

// restartRuleOf fills in what c's restart policy leaves out from cfg.
func restartRuleOf(c *api.Container, cfg PlanConfig) RestartRule {
	r := RestartRule{Attempts: cfg.RestartAttempts, Interval: cfg.RestartInterval,
		Delay: cfg.RestartDelay, MaxDelay: cfg.RestartMaxDelay}
	if p := c.Restart; p != nil {
		if p.Attempts > 0 {
			r.Attempts = p.Attempts
		}
		if p.Interval > 0 {
			r.Interval = p.Interval.Std()
		}
		if p.Delay > 0 {
			r.Delay = p.Delay.Std()
		}
		if p.MaxDelay > 0 {
			r.MaxDelay = p.MaxDelay.Std()
		}
	}
	return r
}

// NextRestart decides what follows the last of a container's exits (oldest
// first): the n-th exit within Interval before it (that one included) is
// restarted after Delay doubled n-1 times, at most MaxDelay; once more than
// Attempts exits fall within Interval, ok is false and the container has
// failed for good. Passing health checks in between reset nothing: a
// container that crashes after it became healthy uses its attempts up too.
// An Interval of zero counts every exit kept.
func NextRestart(r RestartRule, exits []time.Time) (at time.Time, ok bool) {
	if len(exits) == 0 {
		return time.Time{}, true
	}
	last := exits[len(exits)-1]
	n := 0
	for _, e := range exits {
		if r.Interval <= 0 || last.Sub(e) < r.Interval {
			n++
		}
	}
	if n > r.Attempts {
		return time.Time{}, false
	}
	d := r.Delay
	for i := 1; i < n && d < r.MaxDelay; i++ {
		d *= 2
	}
	return last.Add(min(d, r.MaxDelay)), true
}

// maxExitsKept is one more than the most restart.attempts the registry
// accepts: NextRestart never needs older exits.
const maxExitsKept = 1001

// RecordExit returns exits with one at t added, keeping no more than
// NextRestart can count.
func RecordExit(exits []time.Time, t time.Time) []time.Time {
	exits = append(exits, t)
	if len(exits) > maxExitsKept {
		exits = slices.Delete(exits, 0, len(exits)-maxExitsKept)
	}
	return exits
}

// Status is the report a local container gives: its state, and per service
// version serving, draining or drained with the calls in flight.
func Status(c *api.Container, l *Local, versions map[string]string) api.ContainerStatus {
	st := api.ContainerStatus{PID: l.PID, Endpoint: l.Endpoint, Restarts: l.Restarts, Message: l.Message}
	if !l.StartedAt.IsZero() {
		t := l.StartedAt.UTC()
		st.StartedAt = &t
	}
	switch l.Phase {
	case PhaseStarting, PhaseUnhealthy:
		st.State = api.ContainerStarting
	case PhaseExited:
		// Waiting out its restart delay: it starts again. "failed" is
		// for good (the provider replaces a failed container), so a
		// container between restarts never reports it.
		st.State = api.ContainerStarting
		st.PID, st.Endpoint = 0, ""
	case PhaseRunning:
		st.State = api.ContainerRunning
	case PhaseDraining, PhaseStopping:
		st.State = api.ContainerDraining
	case PhaseStopped:
		st.State = api.ContainerStopped
	case PhaseFailed:
		st.State = api.ContainerFailed
	}
	if st.State == api.ContainerStopped || st.State == api.ContainerFailed {
		st.PID, st.Endpoint = 0, ""
	}
	for _, ref := range c.Services {
		k := ref.String()
		n := l.Inflight[k]
		ss := api.ServiceStatus{Service: ref.Service, Version: ref.Version, Inflight: n, State: api.ServiceServing,
			CallsPerMinute: l.CallsPerMinute[k]}
		switch {
		case st.State == api.ContainerStopped || st.State == api.ContainerFailed:
			ss.State = api.ServiceDrained
		case st.State == api.ContainerDraining || versions[k] == api.VersionDraining || versions[k] == api.VersionRetired:
			ss.State = api.ServiceDraining
			if n == 0 {
				ss.State = api.ServiceDrained
			}
		}
		st.Services = append(st.Services, ss)
	}
	return st
}

// reportIfChanged appends a report when the status the local record gives
// differs from the one last accepted, or, when this record has reported
// nothing yet (a container that never ran here, an agent that restarted),
// from the one the registry holds: an unchanged status is never written
// twice. In-flight counts and calls per minute alone do not make a report,
// except where they decide a drain (a draining version whose count reaches
// zero changes state, which does): they are reported once the in-flight
// report interval has passed, and calls per minute only when they changed
// markedly (callsChanged), so an idle container writes nothing.
func reportIfChanged(c *api.Container, l *Local, versions map[string]string, now time.Time, cfg PlanConfig, acts []Action) []Action {
	st := Status(c, l, versions)
	last := l.Reported
	if last == nil {
		last = c.Status
	}
	if last != nil && sameStatus(last, &st) {
		if cfg.InflightReportInterval <= 0 || now.Sub(l.ReportedAt) < cfg.InflightReportInterval || sameDisplay(last, &st) {
			return acts
		}
	}
	return append(acts, Action{Kind: ActReport, ID: c.ID, Status: &st})
}

func sameDisplay(a, b *api.ContainerStatus) bool {
	for i := range a.Services {
		if a.Services[i].Inflight != b.Services[i].Inflight || callsChanged(a.Services[i].CallsPerMinute, b.Services[i].CallsPerMinute) {
			return false
		}
	}
	return true
}

// callsChanged reports whether calls per minute went from was to now
// markedly enough to report: to or from zero, or by a tenth or more (at
// least 2), so a steady load does not report the jitter of its window.
func callsChanged(was, now int) bool {
	if was == now {
		return false
	}
	if was == 0 || now == 0 {
		return true
	}
	d := max(was-now, now-was)
	return d >= 2 && d*10 >= was
}

// sameStatus compares two reports, ignoring in-flight counts and the
// registry's own timestamp.
func sameStatus(a, b *api.ContainerStatus) bool {
	if a.State != b.State || a.Endpoint != b.Endpoint || a.PID != b.PID || a.Restarts != b.Restarts ||
		a.Message != b.Message || len(a.Services) != len(b.Services) {
		return false
	}
	if (a.StartedAt == nil) != (b.StartedAt == nil) || (a.StartedAt != nil && !a.StartedAt.Equal(*b.StartedAt)) {
		return false
	}
	for i := range a.Services {
		x, y := a.Services[i], b.Services[i]
		if x.Service != y.Service || x.Version != y.Version || x.State != y.State {
			return false
		}
	}
	return true
}

// Fingerprint identifies what a container runs: its service set, driver,
// driver config and resources. Two containers with the same fingerprint run the same
// process.
func Fingerprint(c *api.Container) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(struct {
		Services  []api.ServiceRef
		Driver    string
		Config    api.DriverConfig
		Resources *api.Resources `json:",omitempty"` // nil leaves older fingerprints as they were
	}{c.Services, c.Driver, c.Config, c.Resources})
	return hex.EncodeToString(h.Sum(nil)[:12])
}
