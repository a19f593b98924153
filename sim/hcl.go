package sim

import (
	"fmt"
	"math"
	"math/big"
	"os"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// ParseFile reads a scenario written in HCL; see Parse.
func ParseFile(path string) (*Scenario, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(src, path)
}

// Parse reads a scenario written in HCL and validates it. Errors are a
// *ValidationError whose problems carry the file, line and column.
//
//	scenario "rolling-upgrade" { description = "..." converge_within = "60s" }
//	registry { commit_latency = "uniform(2ms, 15ms)" }   # network, agent alike
//	nodes { prefix = "n" count = 3 }                     # or node "edge-1" {}
//	service "greeter" {
//	  version "1.0.0" { clients = ">= 1.0, < 2.0" }
//	}
//	containers "g1" { count = 3 services = ["greeter@1.0.0"] }
//	cohort "web" { clients = 200 version = "1.2.0" calls = ["greeter"] rate = 1 }
//	step "20s" {
//	  declare_version { service = "greeter" version = "1.1.0" clients = ">= 1.0, < 2.0" }
//	  add_containers { prefix = "g2" count = 3 services = ["greeter@1.1.0"] }
//	}
func Parse(src []byte, filename string) (*Scenario, error) {
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, &ValidationError{Problems: diagProblems(diags)}
	}
	d := newDecoder()
	sc := d.scenario(f.Body)
	probs := diagProblems(d.diags)
	if sc != nil {
		// What the decoder could read is validated too, so that one pass
		// reports every problem; Validate leaves alone what the decoder
		// reported.
		sc.file = d.file
		probs = append(probs, sc.validate()...)
		sortProblems(probs)
	}
	if len(probs) > 0 {
		return nil, &ValidationError{Problems: probs}
	}
	return sc, nil
}

func diagProblems(diags hcl.Diagnostics) []Problem {
	var out []Problem
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		var p Pos
		if d.Subject != nil {
			p = posOf(*d.Subject)
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += "; " + d.Detail
		}
		out = append(out, Problem{Pos: p, Message: msg})
	}
	return out
}

func posOf(r hcl.Range) Pos { return Pos{File: r.Filename, Line: r.Start.Line, Col: r.Start.Column} }

// decoder reads blocks and attributes, collecting diagnostics and, in
// file, where each attribute was written and which it could not read.
type decoder struct {
	diags hcl.Diagnostics
	file  *fileInfo
	// block is the position of the block being read.
	block Pos
}

func newDecoder() *decoder {
	return &decoder{file: &fileInfo{attrs: map[Pos]map[string]Pos{}, blocks: map[string]Pos{},
		bad: map[Pos]map[string]bool{}, partial: map[string]bool{}}}
}

func (d *decoder) errAt(r hcl.Range, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r.Ptr()})
}

// attrErr reports attribute a of the block being read, and marks it bad.
func (d *decoder) attrErr(a *hcl.Attribute, summary, detail string) {
	d.errAt(a.Expr.Range(), summary, detail)
	d.markBad(a.Name)
}

func (d *decoder) markBad(name string) {
	if d.file.bad[d.block] == nil {
		d.file.bad[d.block] = map[string]bool{}
	}
	d.file.bad[d.block][name] = true
}

// ok reports whether the attributes names of the block being read were
// given and read.
func (d *decoder) ok(names ...string) bool {
	for _, n := range names {
		if d.file.bad[d.block][n] {
			return false
		}
	}
	return true
}

// content reads the body of the block defined at def: it becomes the block
// being read, its attributes' positions are recorded, and a required one
// missing is marked bad.
func (d *decoder) content(b hcl.Body, def hcl.Range, attrs []string, required []string, blocks []hcl.BlockHeaderSchema) *hcl.BodyContent {
	d.block = posOf(def)
	s := &hcl.BodySchema{Blocks: blocks}
	for _, a := range attrs {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: a, Required: contains(required, a)})
	}
	c, diags := b.Content(s)
	d.diags = append(d.diags, diags...)
	if c == nil {
		return nil
	}
	at := map[string]Pos{}
	for name, a := range c.Attributes {
		at[name] = posOf(a.Expr.Range())
	}
	d.file.attrs[d.block] = at
	for _, name := range required {
		if _, ok := c.Attributes[name]; !ok {
			d.markBad(name)
		}
	}
	return c
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func (d *decoder) value(a *hcl.Attribute, want cty.Type, what string) (cty.Value, bool) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		d.markBad(a.Name)
		return cty.NilVal, false
	}
	cv, err := convert.Convert(v, want)
	if err != nil || cv.IsNull() || !cv.IsWhollyKnown() {
		d.attrErr(a, fmt.Sprintf("Invalid %s", a.Name), fmt.Sprintf("%s must be %s", a.Name, what))
		return cty.NilVal, false
	}
	return cv, true
}

func (d *decoder) str(c *hcl.BodyContent, name string, dst *string) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.String, "a string"); ok {
			*dst = v.AsString()
		}
	}
}

func (d *decoder) strs(c *hcl.BodyContent, name string, dst *[]string) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.List(cty.String), "a list of strings"); ok {
			*dst = nil
			for _, e := range v.AsValueSlice() {
				*dst = append(*dst, e.AsString())
			}
		}
	}
}

func (d *decoder) strMap(c *hcl.BodyContent, name string, dst *map[string]string) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.Map(cty.String), "a map of strings"); ok {
			*dst = map[string]string{}
			for k, e := range v.AsValueMap() {
				(*dst)[k] = e.AsString()
			}
		}
	}
}

func (d *decoder) num(c *hcl.BodyContent, name string, dst *float64) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.Number, "a number"); ok {
			f, _ := v.AsBigFloat().Float64()
			if math.IsInf(f, 0) || math.IsNaN(f) {
				d.attrErr(a, "Invalid "+name, name+" must be a finite number")
				return
			}
			*dst = f
		}
	}
}

func (d *decoder) integer(c *hcl.BodyContent, name string, dst *int) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.Number, "a whole number"); ok {
			bf := v.AsBigFloat()
			if !bf.IsInt() {
				d.attrErr(a, "Invalid "+name, name+" must be a whole number")
				return
			}
			i, acc := bf.Int64()
			if acc != big.Exact || i < 0 || i > 10_000_000 {
				d.attrErr(a, "Invalid "+name, name+" must be between 0 and 10000000")
				return
			}
			*dst = int(i)
		}
	}
}

func (d *decoder) boolean(c *hcl.BodyContent, name string, dst *bool) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.Bool, "true or false"); ok {
			*dst = v.True()
		}
	}
}

func (d *decoder) dur(c *hcl.BodyContent, name string, dst *time.Duration) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.String, `a duration such as "250ms" or "2s"`); ok {
			x, err := parseDuration(v.AsString())
			if err != nil {
				d.attrErr(a, "Invalid "+name, err.Error())
				return
			}
			*dst = x
		}
	}
}

func (d *decoder) dist(c *hcl.BodyContent, name string, dst *Dist) {
	if a, ok := c.Attributes[name]; ok {
		if v, ok := d.value(a, cty.String, `a distribution such as "5ms", "uniform(1ms, 5ms)", "exp(5ms)" or "normal(10ms, 2ms)"`); ok {
			x, err := ParseDist(v.AsString())
			if err != nil {
				d.attrErr(a, "Invalid "+name, err.Error())
				return
			}
			*dst = x
		}
	}
}

func labeled(t string, labels ...string) hcl.BlockHeaderSchema {
	return hcl.BlockHeaderSchema{Type: t, LabelNames: labels}
}

func (d *decoder) scenario(body hcl.Body) *Scenario {
	top := d.content(body, hcl.Range{}, nil, nil, []hcl.BlockHeaderSchema{
		labeled("scenario", "name"), labeled("network"), labeled("registry"), labeled("agent"),
		labeled("node", "id"), labeled("nodes"), labeled("service", "name"), labeled("container", "id"),
		labeled("containers", "prefix"), labeled("cohort", "name"), labeled("release_set", "name"), labeled("step", "at"),
	})
	sc := New("")
	if top == nil {
		return nil
	}
	var head *hcl.Block
	for _, b := range top.Blocks {
		if b.Type != "scenario" {
			continue
		}
		if head != nil {
			d.errAt(b.DefRange, "Duplicate scenario block", fmt.Sprintf("the scenario is already named at %s", posOf(head.DefRange)))
			continue
		}
		head = b
	}
	if head == nil {
		d.errAt(body.MissingItemRange(), "Missing scenario block", `a scenario file starts with scenario "name" { ... }`)
		return nil
	}
	sc.Name = head.Labels[0]
	sc.Pos = posOf(head.DefRange)
	c := d.content(head.Body, head.DefRange, []string{"description", "duration", "converge_within", "warmup", "fault_settle"}, nil, nil)
	if c != nil {
		d.str(c, "description", &sc.Description)
		d.dur(c, "duration", &sc.Duration)
		d.dur(c, "converge_within", &sc.ConvergeWithin)
		d.dur(c, "warmup", &sc.Warmup)
		d.dur(c, "fault_settle", &sc.FaultSettle)
	}
	for _, b := range top.Blocks {
		switch b.Type {
		case "network":
			d.file.blocks[b.Type] = posOf(b.DefRange)
			c := d.content(b.Body, b.DefRange, []string{"latency", "loss", "dial_timeout"}, nil, nil)
			if c != nil {
				d.dist(c, "latency", &sc.Network.Latency)
				d.num(c, "loss", &sc.Network.Loss)
				d.dur(c, "dial_timeout", &sc.Network.DialTimeout)
			}
		case "registry":
			d.file.blocks[b.Type] = posOf(b.DefRange)
			c := d.content(b.Body, b.DefRange, []string{"commit_latency", "publish_interval", "propagation", "node_propagation",
				"heartbeat_ttl", "retire_interval"}, nil, nil)
			if c != nil {
				r := &sc.Registry
				d.dist(c, "commit_latency", &r.CommitLatency)
				d.dur(c, "publish_interval", &r.PublishInterval)
				d.dist(c, "propagation", &r.Propagation)
				d.dist(c, "node_propagation", &r.NodePropagation)
				d.dur(c, "heartbeat_ttl", &r.HeartbeatTTL)
				d.dur(c, "retire_interval", &r.RetireInterval)
			}
		case "agent":
			d.file.blocks[b.Type] = posOf(b.DefRange)
			c := d.content(b.Body, b.DefRange, []string{"start_time", "health_delay", "stop_time", "start_timeout", "kill_timeout",
				"restart_delay", "restart_max_delay", "restart_attempts", "inflight_report_interval", "heartbeat_interval",
				"reconcile_interval", "report_timeout", "service_time"}, nil, nil)
			if c != nil {
				a := &sc.Agent
				d.dist(c, "start_time", &a.StartTime)
				d.dist(c, "health_delay", &a.HealthDelay)
				d.dist(c, "stop_time", &a.StopTime)
				d.dur(c, "start_timeout", &a.StartTimeout)
				d.dur(c, "kill_timeout", &a.KillTimeout)
				d.dur(c, "restart_delay", &a.RestartDelay)
				d.dur(c, "restart_max_delay", &a.RestartMaxDelay)
				d.integer(c, "restart_attempts", &a.RestartAttempts)
				d.dur(c, "inflight_report_interval", &a.InflightReportInterval)
				d.dur(c, "heartbeat_interval", &a.HeartbeatInterval)
				d.dur(c, "reconcile_interval", &a.ReconcileInterval)
				d.dur(c, "report_timeout", &a.ReportTimeout)
				d.dist(c, "service_time", &a.ServiceTime)
			}
		}
	}
	// Nodes first: container groups place themselves on them.
	for _, b := range top.Blocks {
		switch b.Type {
		case "node":
			d.content(b.Body, b.DefRange, nil, nil, nil)
			sc.Nodes = append(sc.Nodes, NodeSpec{ID: b.Labels[0], Pos: posOf(b.DefRange)})
		case "nodes":
			c := d.content(b.Body, b.DefRange, []string{"prefix", "count"}, []string{"prefix", "count"}, nil)
			if c == nil {
				continue
			}
			var prefix string
			var n int
			d.str(c, "prefix", &prefix)
			d.integer(c, "count", &n)
			if !d.ok("prefix", "count") {
				d.file.partial["node"] = true
				continue
			}
			for i := 1; i <= n; i++ {
				sc.Nodes = append(sc.Nodes, NodeSpec{ID: fmt.Sprintf("%s-%d", prefix, i), Pos: posOf(b.DefRange)})
			}
		}
	}
	for _, b := range top.Blocks {
		switch b.Type {
		case "service":
			c := d.content(b.Body, b.DefRange, nil, nil, []hcl.BlockHeaderSchema{labeled("version", "version")})
			if c == nil {
				continue
			}
			for _, vb := range c.Blocks {
				if vs, ok := d.version(vb.Body, b.Labels[0], vb.Labels[0], vb.DefRange, nil); ok {
					sc.Versions = append(sc.Versions, vs)
				}
			}
		case "container":
			if cs, ok := d.container(b.Body, b.Labels[0], b.DefRange); ok {
				sc.Containers = append(sc.Containers, cs)
			}
		case "containers":
			sc.Containers = append(sc.Containers, d.group(sc, b.Body, b.Labels[0], b.DefRange)...)
		case "cohort":
			d.cohort(sc, b)
		case "release_set":
			c := d.content(b.Body, b.DefRange, []string{"members"}, []string{"members"}, nil)
			if c == nil {
				continue
			}
			rs := ReleaseSet{Name: b.Labels[0], Pos: posOf(b.DefRange)}
			d.strs(c, "members", &rs.Members)
			sc.ReleaseSets = append(sc.ReleaseSets, rs)
		case "step":
			d.step(sc, b)
		}
	}
	return sc
}

// version reads a version's attributes; force, when not nil, takes a
// step's "force" too.
func (d *decoder) version(body hcl.Body, service, ver string, r hcl.Range, force *bool, required ...string) (VersionSpec, bool) {
	attrs := []string{"service", "version", "clients", "service_time", "fails_health", "crashes_after", "calls"}
	if force != nil {
		attrs = append(attrs, "force")
	}
	c := d.content(body, r, attrs, append(required, "clients"), nil)
	vs := VersionSpec{Service: service, Version: ver, Pos: posOf(r)}
	if c == nil {
		return vs, false
	}
	if force != nil {
		d.boolean(c, "force", force)
	}
	d.str(c, "service", &vs.Service)
	d.str(c, "version", &vs.Version)
	d.str(c, "clients", &vs.Clients)
	d.dist(c, "service_time", &vs.ServiceTime)
	d.boolean(c, "fails_health", &vs.FailsHealth)
	d.dist(c, "crashes_after", &vs.CrashesAfter)
	d.strs(c, "calls", &vs.Calls)
	if !d.ok("service", "version") {
		d.file.partial["version"] = true
	}
	return vs, true
}

func (d *decoder) container(body hcl.Body, id string, r hcl.Range, required ...string) (ContainerSpec, bool) {
	c := d.content(body, r, []string{"id", "node", "services", "drain_timeout"}, append(required, "node", "services"), nil)
	cs := ContainerSpec{ID: id, Pos: posOf(r)}
	if c == nil {
		return cs, false
	}
	d.str(c, "id", &cs.ID)
	if !d.ok("id") {
		d.file.partial["container"] = true
	}
	d.str(c, "node", &cs.Node)
	d.strs(c, "services", &cs.Services)
	d.dur(c, "drain_timeout", &cs.DrainTimeout)
	return cs, true
}

func (d *decoder) group(sc *Scenario, body hcl.Body, prefix string, r hcl.Range, required ...string) []ContainerSpec {
	c := d.content(body, r, []string{"prefix", "count", "nodes", "services", "drain_timeout"}, append(required, "count", "services"), nil)
	if c == nil {
		return nil
	}
	var n int
	var nodes, services []string
	var drain time.Duration
	d.str(c, "prefix", &prefix)
	d.integer(c, "count", &n)
	d.strs(c, "nodes", &nodes)
	d.strs(c, "services", &services)
	d.dur(c, "drain_timeout", &drain)
	if !d.ok("prefix", "count") {
		d.file.partial["container"] = true
		return nil
	}
	if n == 0 {
		d.attrErr(c.Attributes["count"], "Invalid count", "a container group needs a count of at least 1")
	}
	out := sc.Group(prefix, n, nodes, services...)
	for i := range out {
		out[i].DrainTimeout = drain
		out[i].Pos = posOf(r)
	}
	return out
}

func (d *decoder) cohort(sc *Scenario, b *hcl.Block) {
	c := d.content(b.Body, b.DefRange, []string{"clients", "version", "requires", "calls", "rate", "deadline", "on_nodes", "start", "expect_unserved"},
		[]string{"clients", "version", "calls"}, nil)
	if c == nil {
		return
	}
	co := CohortSpec{Name: b.Labels[0], Pos: posOf(b.DefRange), Rate: 1, Deadline: 2 * time.Second}
	d.integer(c, "clients", &co.Clients)
	d.str(c, "version", &co.Version)
	d.strMap(c, "requires", &co.Requires)
	d.strs(c, "calls", &co.Calls)
	d.num(c, "rate", &co.Rate)
	d.dur(c, "deadline", &co.Deadline)
	d.boolean(c, "on_nodes", &co.OnNodes)
	d.dur(c, "start", &co.Start)
	d.boolean(c, "expect_unserved", &co.ExpectUnserved)
	sc.Cohorts = append(sc.Cohorts, co)
}

var actionBlocks = []hcl.BlockHeaderSchema{
	labeled("declare_version"), labeled("retire_version"), labeled("add_container"), labeled("add_containers"),
	labeled("remove_container"), labeled("remove_containers"), labeled("move_cohort"), labeled("set_rate"),
	labeled("crash_node"), labeled("restore_node"), labeled("crash_container"), labeled("partition"), labeled("heal"),
	labeled("lose_leader"), labeled("set_network"),
}

func (d *decoder) step(sc *Scenario, b *hcl.Block) {
	at, err := parseDuration(b.Labels[0])
	if err != nil {
		d.errAt(b.LabelRanges[0], "Invalid step time", `a step is labelled with its virtual time, e.g. step "30s": `+err.Error())
		// Its actions are read for their own problems, but the step is
		// left out: what it would have done is not known.
		d.file.partial["step"] = true
	}
	st := Step{At: at, Pos: posOf(b.DefRange)}
	c := d.content(b.Body, b.DefRange, nil, nil, actionBlocks)
	if c == nil {
		return
	}
	for _, ab := range c.Blocks {
		p := posOf(ab.DefRange)
		switch ab.Type {
		case "declare_version":
			var force bool
			if vs, ok := d.version(ab.Body, "", "", ab.DefRange, &force, "service", "version"); ok {
				st.Actions = append(st.Actions, DeclareVersion{VersionSpec: vs, Force: force})
			}
		case "retire_version":
			cc := d.content(ab.Body, ab.DefRange, []string{"service", "version", "force"}, []string{"service", "version"}, nil)
			if cc == nil {
				continue
			}
			a := RetireVersion{Pos: p}
			d.str(cc, "service", &a.Service)
			d.str(cc, "version", &a.Version)
			d.boolean(cc, "force", &a.Force)
			st.Actions = append(st.Actions, a)
		case "add_container":
			if cs, ok := d.container(ab.Body, "", ab.DefRange, "id"); ok {
				st.Actions = append(st.Actions, AddContainer{cs})
			}
		case "add_containers":
			for _, cs := range d.group(sc, ab.Body, "", ab.DefRange, "prefix") {
				st.Actions = append(st.Actions, AddContainer{cs})
			}
		case "remove_container":
			cc := d.content(ab.Body, ab.DefRange, []string{"id"}, []string{"id"}, nil)
			if cc == nil {
				continue
			}
			a := RemoveContainer{Pos: p}
			d.str(cc, "id", &a.ID)
			st.Actions = append(st.Actions, a)
		case "remove_containers":
			cc := d.content(ab.Body, ab.DefRange, []string{"prefix", "count"}, []string{"prefix", "count"}, nil)
			if cc == nil {
				continue
			}
			var prefix string
			var n int
			d.str(cc, "prefix", &prefix)
			d.integer(cc, "count", &n)
			for _, a := range RemoveGroup(prefix, n) {
				r := a.(RemoveContainer)
				r.Pos = p
				st.Actions = append(st.Actions, r)
			}
		case "move_cohort":
			cc := d.content(ab.Body, ab.DefRange, []string{"cohort", "version", "fraction", "count"}, []string{"cohort", "version"}, nil)
			if cc == nil {
				continue
			}
			a := MoveCohort{Pos: p}
			d.str(cc, "cohort", &a.Cohort)
			d.str(cc, "version", &a.Version)
			d.num(cc, "fraction", &a.Fraction)
			d.integer(cc, "count", &a.Count)
			st.Actions = append(st.Actions, a)
		case "set_rate":
			cc := d.content(ab.Body, ab.DefRange, []string{"cohort", "rate"}, []string{"cohort", "rate"}, nil)
			if cc == nil {
				continue
			}
			a := SetRate{Pos: p}
			d.str(cc, "cohort", &a.Cohort)
			d.num(cc, "rate", &a.Rate)
			st.Actions = append(st.Actions, a)
		case "crash_node", "restore_node":
			cc := d.content(ab.Body, ab.DefRange, []string{"node"}, []string{"node"}, nil)
			if cc == nil {
				continue
			}
			var n string
			d.str(cc, "node", &n)
			if ab.Type == "crash_node" {
				st.Actions = append(st.Actions, CrashNode{Node: n, Pos: p})
			} else {
				st.Actions = append(st.Actions, RestoreNode{Node: n, Pos: p})
			}
		case "crash_container":
			cc := d.content(ab.Body, ab.DefRange, []string{"id"}, []string{"id"}, nil)
			if cc == nil {
				continue
			}
			a := CrashContainer{Pos: p}
			d.str(cc, "id", &a.ID)
			st.Actions = append(st.Actions, a)
		case "partition":
			cc := d.content(ab.Body, ab.DefRange, []string{"name", "a", "b"}, []string{"name", "a", "b"}, nil)
			if cc == nil {
				continue
			}
			a := Partition{Pos: p}
			d.str(cc, "name", &a.Name)
			d.strs(cc, "a", &a.A)
			d.strs(cc, "b", &a.B)
			st.Actions = append(st.Actions, a)
		case "heal":
			cc := d.content(ab.Body, ab.DefRange, []string{"name"}, []string{"name"}, nil)
			if cc == nil {
				continue
			}
			a := Heal{Pos: p}
			d.str(cc, "name", &a.Name)
			st.Actions = append(st.Actions, a)
		case "lose_leader":
			cc := d.content(ab.Body, ab.DefRange, []string{"for"}, []string{"for"}, nil)
			if cc == nil {
				continue
			}
			a := LoseLeader{Pos: p}
			d.dur(cc, "for", &a.For)
			st.Actions = append(st.Actions, a)
		case "set_network":
			cc := d.content(ab.Body, ab.DefRange, []string{"latency", "loss"}, nil, nil)
			if cc == nil {
				continue
			}
			a := SetNetwork{Pos: p}
			if _, ok := cc.Attributes["latency"]; ok {
				var x Dist
				d.dist(cc, "latency", &x)
				a.Latency = &x
			}
			if _, ok := cc.Attributes["loss"]; ok {
				var x float64
				d.num(cc, "loss", &x)
				a.Loss = &x
			}
			st.Actions = append(st.Actions, a)
		}
	}
	if err == nil {
		sc.Steps = append(sc.Steps, st)
	}
}
