package sim

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/raftregistry/state"
)

// Validate checks the scenario as the registry and the simulator would,
// walking the steps in time order: the settings' bounds, names, versions
// and ranges, and that what a step names exists by then. Every problem is
// reported, in the order of the file, at the attribute it is about when
// the scenario came from a file. The error is a *ValidationError.
func (s *Scenario) Validate() error {
	if probs := s.validate(); len(probs) > 0 {
		return &ValidationError{Problems: probs}
	}
	return nil
}

// validate returns the scenario's problems in the order of the file.
func (s *Scenario) validate() []Problem {
	v := newValidator(s)
	v.settings()
	v.nodeSpecs()
	steps := slices.Clone(s.Steps)
	slices.SortStableFunc(steps, func(a, b Step) int { return cmp.Compare(a.At, b.At) })
	v.versionSpecs(steps)
	for _, c := range s.Containers {
		v.container(c, 0)
	}
	v.cohortSpecs()
	v.releaseSets()
	for _, st := range steps {
		v.step(st)
	}
	sortProblems(v.probs)
	return v.probs
}

// sortProblems puts problems in the order of the file; those without a
// position (a scenario built in Go) keep their order, first.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}

// validator collects problems and what exists so far in the walk.
type validator struct {
	s     *Scenario
	probs []Problem

	nodes map[string]bool
	// known is every version ever declared, with its behaviour (fixed at
	// the first declaration); services every service ever declared.
	known    map[string]VersionSpec
	services map[string]bool
	// declared is what is declared by the time of the walk.
	declared map[string]bool
	// containers is every container declared by then (ids are never
	// reused); present those not removed.
	containers, present map[string]bool
	cohorts             map[string]bool
	partitions, crashed map[string]bool
}

func newValidator(s *Scenario) *validator {
	return &validator{s: s, nodes: map[string]bool{}, known: map[string]VersionSpec{}, services: map[string]bool{},
		declared: map[string]bool{}, containers: map[string]bool{}, present: map[string]bool{}, cohorts: map[string]bool{},
		partitions: map[string]bool{}, crashed: map[string]bool{}}
}

// at is where attribute attr of the block at p was written: the attribute
// when the file gave it, else the block.
func (v *validator) at(p Pos, attr string) Pos {
	if f := v.s.file; f != nil && attr != "" {
		if ap, ok := f.attrs[p][attr]; ok {
			return ap
		}
	}
	return p
}

// add reports a problem with attribute attr ("" for the block itself) of
// the block at p, unless the decoder already reported that attribute
// (its value was wrong, or it was missing).
func (v *validator) add(p Pos, attr, format string, args ...any) {
	if f := v.s.file; f != nil && f.bad[p][attr] {
		return
	}
	v.probs = append(v.probs, Problem{Pos: v.at(p, attr), Message: fmt.Sprintf(format, args...)})
}

// setting reports a problem with attribute attr of a settings block
// ("network", "registry", "agent"; "" for the scenario block).
func (v *validator) setting(block, attr, format string, args ...any) {
	p := v.s.Pos
	if f := v.s.file; f != nil && block != "" {
		bp, ok := f.blocks[block]
		if !ok {
			// The block is not in the file: the problem is a default
			// the other settings make wrong; point at the scenario.
			v.add(p, "", format, args...)
			return
		}
		p = bp
	}
	v.add(p, attr, format, args...)
}

// check reports a state validation error (a *state.FieldError) under the
// name what.
func (v *validator) check(p Pos, attr, what string, err error) bool {
	if err == nil {
		return true
	}
	var fe *state.FieldError
	if errors.As(err, &fe) {
		v.add(p, attr, "%s: %s", what, fe.Reason)
	} else {
		v.add(p, attr, "%s: %v", what, err)
	}
	return false
}

// partial reports whether a bad block may have left out things of kind
// ("node", "container", "version", "step"; a step left out may have held
// anything): references to them are then not checked.
func (v *validator) partial(kind string) bool {
	return v.s.file != nil && (v.s.file.partial[kind] || v.s.file.partial["step"])
}

// settings checks the scenario's own attributes and the models' settings.
func (v *validator) settings() {
	s := v.s
	if s.Name == "" {
		v.add(s.Pos, "", "scenario: name must not be empty")
	}
	if s.ConvergeWithin <= 0 {
		v.add(s.Pos, "converge_within", "converge_within must be positive")
	}
	if s.Network.Loss < 0 || s.Network.Loss >= 1 {
		v.setting("network", "loss", "network loss must be in [0, 1), got %g", s.Network.Loss)
	}
	if s.Registry.HeartbeatTTL <= s.Agent.HeartbeatInterval {
		block, attr := "registry", "heartbeat_ttl"
		if f := s.file; f != nil && f.attrs[f.blocks["registry"]]["heartbeat_ttl"] == (Pos{}) {
			block, attr = "agent", "heartbeat_interval"
		}
		v.setting(block, attr, "heartbeat_ttl (%s) must be longer than the agents' heartbeat_interval (%s)", s.Registry.HeartbeatTTL, s.Agent.HeartbeatInterval)
	}
	for _, d := range []struct {
		block, attr string
		d           time.Duration
	}{{"registry", "retire_interval", s.Registry.RetireInterval}, {"agent", "heartbeat_interval", s.Agent.HeartbeatInterval},
		{"agent", "reconcile_interval", s.Agent.ReconcileInterval}, {"agent", "kill_timeout", s.Agent.KillTimeout},
		{"agent", "start_timeout", s.Agent.StartTimeout}, {"network", "dial_timeout", s.Network.DialTimeout},
		{"agent", "report_timeout", s.Agent.ReportTimeout}} {
		if d.d <= 0 {
			v.setting(d.block, d.attr, "%s %s must be positive", d.block, d.attr)
		}
	}
}

// nodeSpecs checks the nodes: valid, distinct ids, at least one.
func (v *validator) nodeSpecs() {
	for _, n := range v.s.Nodes {
		if !v.check(n.Pos, "", "node", state.ValidateName("id", n.ID)) {
			continue
		}
		if v.nodes[n.ID] {
			v.add(n.Pos, "", "node %q is declared twice", n.ID)
		}
		v.nodes[n.ID] = true
	}
	if len(v.s.Nodes) == 0 && !v.partial("node") {
		v.add(v.s.Pos, "", "the scenario has no node")
	}
}

// versionSpecs checks every declaration, at time 0 and in the steps, and
// the services the versions call.
func (v *validator) versionSpecs(steps []Step) {
	for _, vs := range v.s.Versions {
		v.version(vs)
		v.declared[vs.Ref()] = true
	}
	for _, st := range steps {
		for _, a := range st.Actions {
			if d, ok := a.(DeclareVersion); ok {
				v.version(d.VersionSpec)
			}
		}
	}
	for _, ref := range sortedKeys(v.known) {
		vs := v.known[ref]
		for _, c := range vs.Calls {
			if !v.services[c] && !v.partial("version") {
				v.add(vs.Pos, "calls", "%s calls service %q, which is never declared", vs.Ref(), c)
			}
		}
	}
}

// version checks one declaration: its names and range, and that a
// declaration again changes only the range.
func (v *validator) version(vs VersionSpec) {
	ok := v.check(vs.Pos, "service", "service", state.ValidateName("service", vs.Service)) &&
		v.check(vs.Pos, "version", "version", state.ValidateVersion("version", vs.Version)) &&
		v.check(vs.Pos, "clients", "clients", state.ValidateConstraint("clients", vs.Clients))
	if !ok {
		return
	}
	if vs.FailsHealth && !vs.CrashesAfter.IsZero() {
		v.add(vs.Pos, "crashes_after", "%s: crashes_after counts from when a container becomes healthy, which with fails_health it never does", vs.Ref())
	}
	old, dup := v.known[vs.Ref()]
	if !dup {
		v.known[vs.Ref()] = vs
		v.services[vs.Service] = true
		return
	}
	for _, f := range []struct {
		attr    string
		changed bool
	}{
		{"service_time", !vs.ServiceTime.IsZero() && vs.ServiceTime != old.ServiceTime},
		{"fails_health", old.FailsHealth != vs.FailsHealth},
		{"crashes_after", !vs.CrashesAfter.IsZero() && vs.CrashesAfter != old.CrashesAfter},
		{"calls", !slices.Equal(old.Calls, vs.Calls)},
	} {
		if f.changed {
			v.add(vs.Pos, f.attr, "%s: only clients may change when a version is declared again (%s is fixed where it is first declared, %s)", vs.Ref(), f.attr, old.Pos)
		}
	}
}

// container checks a container declared at time at: a new id, a declared
// node, and versions declared by then, at most one per service.
func (v *validator) container(c ContainerSpec, at time.Duration) {
	if !v.check(c.Pos, "id", "container", state.ValidateName("id", c.ID)) {
		return
	}
	if v.containers[c.ID] {
		v.add(c.Pos, "id", "container %q is declared twice (ids are never reused)", c.ID)
		return
	}
	v.containers[c.ID] = true
	v.present[c.ID] = true
	if !v.nodes[c.Node] && !v.partial("node") {
		v.add(c.Pos, "node", "container %q: node %q is not declared", c.ID, c.Node)
	}
	if len(c.Services) == 0 {
		v.add(c.Pos, "services", "container %q: services must name at least one service@version", c.ID)
	}
	held := map[string]bool{}
	for i, ref := range c.Services {
		svc, _, ok := splitRef(ref)
		if !ok {
			v.add(c.Pos, "services", "container %q: services[%d] %q: want service@version", c.ID, i, ref)
			continue
		}
		if held[svc] {
			v.add(c.Pos, "services", "container %q: services[%d]: a container holds at most one version of service %q", c.ID, i, svc)
		}
		held[svc] = true
		if !v.declared[ref] && !v.partial("version") {
			v.add(c.Pos, "services", "container %q: services[%d]: %s is not declared by %s", c.ID, i, ref, at)
		}
	}
	if c.DrainTimeout < 0 || c.DrainTimeout > state.MaxDrainTimeout {
		v.add(c.Pos, "drain_timeout", "container %q: drain_timeout must be between 0 and %s", c.ID, state.MaxDrainTimeout)
	}
}

// cohortSpecs checks the cohorts: distinct names, clients, a valid version
// and requirements, services that exist, a rate and a deadline.
func (v *validator) cohortSpecs() {
	for _, c := range v.s.Cohorts {
		if c.Name == "" {
			v.add(c.Pos, "", "cohort: name must not be empty")
		} else if v.cohorts[c.Name] {
			v.add(c.Pos, "", "cohort %q is declared twice", c.Name)
		}
		v.cohorts[c.Name] = true
		if c.Clients < 1 {
			v.add(c.Pos, "clients", "cohort %q: clients must be at least 1", c.Name)
		}
		v.check(c.Pos, "version", fmt.Sprintf("cohort %q: version", c.Name), state.ValidateVersion("version", c.Version))
		for _, svc := range sortedKeys(c.Requires) {
			v.check(c.Pos, "requires", fmt.Sprintf("cohort %q: requires[%s]", c.Name, svc), state.ValidateConstraint("requires", c.Requires[svc]))
		}
		if len(c.Calls) == 0 {
			v.add(c.Pos, "calls", "cohort %q: calls must name at least one service", c.Name)
		}
		for _, svc := range c.Calls {
			if !v.services[svc] && !v.partial("version") {
				v.add(c.Pos, "calls", "cohort %q calls service %q, which is never declared", c.Name, svc)
			}
		}
		if c.Rate < 0 {
			v.add(c.Pos, "rate", "cohort %q: rate must not be negative", c.Name)
		}
		if c.Deadline <= 0 {
			v.add(c.Pos, "deadline", "cohort %q: deadline must be positive", c.Name)
		}
	}
}

// releaseSets checks that every member of a release set is declared.
func (v *validator) releaseSets() {
	for _, rs := range v.s.ReleaseSets {
		if len(rs.Members) == 0 {
			v.add(rs.Pos, "members", "release set %q has no member", rs.Name)
		}
		for _, m := range rs.Members {
			if _, ok := v.known[m]; !ok && !v.partial("version") {
				v.add(rs.Pos, "members", "release set %q: %s is never declared", rs.Name, m)
			}
		}
	}
}

// step checks a step's time and each of its actions against what exists
// by then.
func (v *validator) step(st Step) {
	if st.At < 0 {
		v.add(st.Pos, "", "step at %s: time must not be negative", st.At)
	}
	if v.s.Duration > 0 && st.At > v.s.Duration {
		v.add(st.Pos, "", "step at %s is after the end of the run (duration %s)", st.At, v.s.Duration)
	}
	if len(st.Actions) == 0 {
		v.add(st.Pos, "", "step at %s does nothing", st.At)
	}
	for _, a := range st.Actions {
		if a == nil {
			v.add(st.Pos, "", "step at %s: nil action", st.At)
			continue
		}
		p := a.position()
		if p == (Pos{}) {
			p = st.Pos
		}
		switch a := a.(type) {
		case DeclareVersion:
			v.declared[a.Ref()] = true
		case RetireVersion:
			if !v.declared[a.Service+"@"+a.Version] && !v.partial("version") {
				v.add(p, "version", "retire %s@%s: not declared by %s", a.Service, a.Version, st.At)
			}
		case AddContainer:
			a.ContainerSpec.Pos = p
			v.container(a.ContainerSpec, st.At)
		case RemoveContainer:
			if !v.present[a.ID] && !v.partial("container") {
				v.add(p, "id", "remove container %q: no such container at %s", a.ID, st.At)
			}
			delete(v.present, a.ID)
		case CrashContainer:
			if !v.containers[a.ID] && !v.partial("container") {
				v.add(p, "id", "crash container %q: no such container at %s", a.ID, st.At)
			}
		case MoveCohort, SetRate:
			v.cohortAction(p, a)
		case CrashNode, RestoreNode:
			v.nodeFault(p, a, st.At)
		case Partition, Heal:
			v.partition(p, a, st.At)
		case LoseLeader:
			if a.For <= 0 {
				v.add(p, "for", "lose_leader: for must be positive")
			}
		case SetNetwork:
			if a.Loss != nil && (*a.Loss < 0 || *a.Loss >= 1) {
				v.add(p, "loss", "set_network: loss must be in [0, 1), got %g", *a.Loss)
			}
		}
	}
}

// cohortAction checks a move_cohort or set_rate step.
func (v *validator) cohortAction(p Pos, a Action) {
	switch a := a.(type) {
	case MoveCohort:
		if !v.cohorts[a.Cohort] {
			v.add(p, "cohort", "move_cohort: cohort %q is not declared", a.Cohort)
		}
		v.check(p, "version", "move_cohort: version", state.ValidateVersion("version", a.Version))
		if (a.Fraction <= 0 || a.Fraction > 1) && a.Count <= 0 {
			attr := "fraction"
			if a.Fraction == 0 {
				attr = "count"
			}
			v.add(p, attr, "move_cohort: give a fraction in (0, 1] or a positive count")
		}
	case SetRate:
		if !v.cohorts[a.Cohort] {
			v.add(p, "cohort", "set_rate: cohort %q is not declared", a.Cohort)
		}
		if a.Rate < 0 {
			v.add(p, "rate", "set_rate: rate must not be negative")
		}
	}
}

// nodeFault checks a crash_node or restore_node step: a declared node,
// crashed only when up and restored only when crashed.
func (v *validator) nodeFault(p Pos, a Action, at time.Duration) {
	switch a := a.(type) {
	case CrashNode:
		if !v.nodes[a.Node] {
			if !v.partial("node") {
				v.add(p, "node", "crash_node: node %q is not declared", a.Node)
			}
		} else if v.crashed[a.Node] && !v.partial("step") {
			v.add(p, "node", "crash_node: node %q is already crashed at %s", a.Node, at)
		}
		v.crashed[a.Node] = true
	case RestoreNode:
		if !v.crashed[a.Node] && !v.partial("step") {
			v.add(p, "node", "restore_node: node %q is not crashed at %s", a.Node, at)
		}
		delete(v.crashed, a.Node)
	}
}

// partition checks a partition or heal step: a partition has a new name
// and endpoints that exist; a heal names a partition in place.
func (v *validator) partition(p Pos, a Action, at time.Duration) {
	switch a := a.(type) {
	case Partition:
		if a.Name == "" {
			v.add(p, "name", "partition: name must not be empty")
		} else if v.partitions[a.Name] && !v.partial("step") {
			v.add(p, "name", "partition %q is already in place at %s", a.Name, at)
		}
		v.partitions[a.Name] = true
		if len(a.A) == 0 || len(a.B) == 0 {
			attr := "a"
			if len(a.A) > 0 {
				attr = "b"
			}
			v.add(p, attr, "partition %q: both a and b must name endpoints", a.Name)
		}
		for _, side := range []struct {
			attr string
			eps  []string
		}{{"a", a.A}, {"b", a.B}} {
			for _, e := range side.eps {
				v.endpoint(p, side.attr, e)
			}
		}
	case Heal:
		if !v.partitions[a.Name] && !v.partial("step") {
			v.add(p, "name", "heal: no partition %q in place at %s", a.Name, at)
		}
		delete(v.partitions, a.Name)
	}
}

// endpoint checks one partition endpoint.
func (v *validator) endpoint(p Pos, attr, e string) {
	switch {
	case e == "registry" || e == "nodes" || e == "clients":
	case strings.HasPrefix(e, "node:"):
		if !v.nodes[e[5:]] && !v.partial("node") {
			v.add(p, attr, "partition endpoint %q: node %q is not declared", e, e[5:])
		}
	case strings.HasPrefix(e, "cohort:"):
		if !v.cohorts[e[7:]] {
			v.add(p, attr, "partition endpoint %q: cohort %q is not declared", e, e[7:])
		}
	default:
		v.add(p, attr, "partition endpoint %q: want registry, nodes, clients, node:ID or cohort:NAME", e)
	}
}
