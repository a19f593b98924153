package provider

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/coexist-dev/coexist/api"
)

// The model of coexist_container and its conversions to and from the
// registry's wire types. Reading back from the registry keeps the forms the
// operator wrote wherever they mean the same thing (an empty list and no
// list, "1m" and "1m0s", an env value the token may not see), so that a
// refresh never plans a replacement.

type containerModel struct {
	ID           types.String   `tfsdk:"id"`
	Name         types.String   `tfsdk:"name"`
	Node         types.String   `tfsdk:"node"`
	Services     types.Set      `tfsdk:"services"`
	Driver       types.String   `tfsdk:"driver"`
	Config       types.Object   `tfsdk:"config"`
	Health       types.Object   `tfsdk:"health"`
	Restart      types.Object   `tfsdk:"restart"`
	Resources    types.Object   `tfsdk:"resources"`
	DrainTimeout Duration       `tfsdk:"drain_timeout"`
	State        types.String   `tfsdk:"state"`
	Endpoint     types.String   `tfsdk:"endpoint"`
	PID          types.Int64    `tfsdk:"pid"`
	StartedAt    types.String   `tfsdk:"started_at"`
	Timeouts     timeouts.Value `tfsdk:"timeouts"`
}

type serviceRefModel struct {
	Service types.String `tfsdk:"service"`
	Version types.String `tfsdk:"version"`
}

type configModel struct {
	Command types.String `tfsdk:"command"`
	Image   types.String `tfsdk:"image"`
	Args    types.List   `tfsdk:"args"`
	Env     types.Map    `tfsdk:"env"`
}

type healthModel struct {
	HTTP     types.String `tfsdk:"http"`
	TCP      types.Bool   `tfsdk:"tcp"`
	Interval Duration     `tfsdk:"interval"`
	Timeout  Duration     `tfsdk:"timeout"`
}

// resourcesModel holds the limits as written ("256MiB", "0.5"): the
// registry keeps them so, and reading back gives the same strings.
type resourcesModel struct {
	Memory types.String `tfsdk:"memory"`
	CPU    types.String `tfsdk:"cpu"`
}

type restartModel struct {
	Attempts types.Int64 `tfsdk:"attempts"`
	Interval Duration    `tfsdk:"interval"`
	Delay    Duration    `tfsdk:"delay"`
	MaxDelay Duration    `tfsdk:"max_delay"`
}

var (
	serviceRefAttrTypes = map[string]attr.Type{"service": types.StringType, "version": types.StringType}
	configAttrTypes     = map[string]attr.Type{
		"command": types.StringType,
		"image":   types.StringType,
		"args":    types.ListType{ElemType: types.StringType},
		"env":     types.MapType{ElemType: types.StringType},
	}
	healthAttrTypes = map[string]attr.Type{
		"http": types.StringType, "tcp": types.BoolType, "interval": DurationType{}, "timeout": DurationType{},
	}
	restartAttrTypes = map[string]attr.Type{
		"attempts": types.Int64Type, "interval": DurationType{}, "delay": DurationType{}, "max_delay": DurationType{},
	}
	resourcesAttrTypes = map[string]attr.Type{"memory": types.StringType, "cpu": types.StringType}
)

// redacted is what the registry shows instead of an env value to a token
// that may not see it.
const redacted = "<redacted>"

// Container ids are the name, a dash and a suffix made at create, so that a
// replacement (create_before_destroy) can exist beside the container it
// replaces.
const (
	suffixLen     = 5
	maxContainerN = maxNameLen - 1 - suffixLen - 1 // 56: room for a suffix of up to 6
	suffixChars   = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// newContainerID returns name plus a random suffix.
func newContainerID(name string) string {
	b := make([]byte, suffixLen)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	for i := range b {
		b[i] = suffixChars[int(b[i])%len(suffixChars)]
	}
	return name + "-" + string(b)
}

// request builds the registry's ContainerRequest from a planned model.
func (m *containerModel) request(ctx context.Context) (api.ContainerRequest, diag.Diagnostics) {
	var diags diag.Diagnostics
	req := api.ContainerRequest{
		Name:         m.Name.ValueString(),
		Node:         m.Node.ValueString(),
		Driver:       m.Driver.ValueString(),
		DrainTimeout: api.Duration(m.DrainTimeout.Std()),
	}

	var refs []serviceRefModel
	diags.Append(m.Services.ElementsAs(ctx, &refs, false)...)
	for _, r := range refs {
		req.Services = append(req.Services, api.ServiceRef{Service: r.Service.ValueString(), Version: r.Version.ValueString()})
	}
	// Sorted, so that a 400 naming services[i] points at the same entry
	// every time.
	slices.SortFunc(req.Services, func(a, b api.ServiceRef) int { return strings.Compare(a.Service, b.Service) })

	var cfg configModel
	diags.Append(m.Config.As(ctx, &cfg, basetypes.ObjectAsOptions{})...)
	req.Config.Command = cfg.Command.ValueString()
	req.Config.Image = cfg.Image.ValueString()
	if !cfg.Args.IsNull() && !cfg.Args.IsUnknown() {
		diags.Append(cfg.Args.ElementsAs(ctx, &req.Config.Args, false)...)
	}
	if !cfg.Env.IsNull() && !cfg.Env.IsUnknown() {
		diags.Append(cfg.Env.ElementsAs(ctx, &req.Config.Env, false)...)
	}

	if !m.Health.IsNull() && !m.Health.IsUnknown() {
		var h healthModel
		diags.Append(m.Health.As(ctx, &h, basetypes.ObjectAsOptions{})...)
		req.Health = &api.HealthCheck{
			HTTP:     h.HTTP.ValueString(),
			TCP:      h.TCP.ValueBool(),
			Interval: api.Duration(h.Interval.Std()),
			Timeout:  api.Duration(h.Timeout.Std()),
		}
	}
	if !m.Restart.IsNull() && !m.Restart.IsUnknown() {
		var r restartModel
		diags.Append(m.Restart.As(ctx, &r, basetypes.ObjectAsOptions{})...)
		req.Restart = &api.RestartPolicy{
			Attempts: int(r.Attempts.ValueInt64()),
			Interval: api.Duration(r.Interval.Std()),
			Delay:    api.Duration(r.Delay.Std()),
			MaxDelay: api.Duration(r.MaxDelay.Std()),
		}
	}
	if !m.Resources.IsNull() && !m.Resources.IsUnknown() {
		var r resourcesModel
		diags.Append(m.Resources.As(ctx, &r, basetypes.ObjectAsOptions{})...)
		if r.Memory.ValueString() != "" || r.CPU.ValueString() != "" {
			req.Resources = &api.Resources{Memory: r.Memory.ValueString(), CPU: r.CPU.ValueString()}
		}
	}
	return req, diags
}

// setObserved fills the computed attributes from what the agent reported;
// nil ct (or no report yet) leaves them known but empty.
func (m *containerModel) setObserved(ct *api.Container) {
	m.State = types.StringValue(api.ContainerStarting)
	m.Endpoint = types.StringNull()
	m.PID = types.Int64Null()
	m.StartedAt = types.StringNull()
	if ct == nil || ct.Status == nil {
		return
	}
	st := ct.Status
	m.State = types.StringValue(st.State)
	if st.Endpoint != "" {
		m.Endpoint = types.StringValue(st.Endpoint)
	}
	if st.PID != 0 {
		m.PID = types.Int64Value(int64(st.PID))
	}
	if st.StartedAt != nil {
		m.StartedAt = types.StringValue(st.StartedAt.UTC().Format(time.RFC3339Nano))
	}
}

// fromAPI sets m from the registry's container, keeping prior's forms where
// they mean the same (prior is the state before a refresh, or an empty model
// on import).
func (m *containerModel) fromAPI(ctx context.Context, ct *api.Container, prior *containerModel) diag.Diagnostics {
	var diags diag.Diagnostics
	m.ID = types.StringValue(ct.ID)
	// The name it was declared with; a container declared before the
	// registry kept names keeps the one in state; one declared without a
	// name (by the API) is named by its id. Never a guess from the id.
	switch {
	case ct.Name != "":
		m.Name = types.StringValue(ct.Name)
	case !prior.Name.IsNull() && !prior.Name.IsUnknown() && prior.Name.ValueString() != "":
		m.Name = prior.Name
	default:
		m.Name = types.StringValue(ct.ID)
	}
	m.Node = types.StringValue(ct.Node)
	m.Driver = types.StringValue(ct.Driver)
	m.DrainTimeout = keepDuration(prior.DrainTimeout, DurationOf(ct.DrainTimeout.Std()))
	m.Timeouts = prior.Timeouts

	refs := make([]attr.Value, 0, len(ct.Services))
	for _, r := range ct.Services {
		v, d := types.ObjectValue(serviceRefAttrTypes, map[string]attr.Value{
			"service": types.StringValue(r.Service), "version": types.StringValue(r.Version),
		})
		diags.Append(d...)
		refs = append(refs, v)
	}
	var d diag.Diagnostics
	m.Services, d = types.SetValue(types.ObjectType{AttrTypes: serviceRefAttrTypes}, refs)
	diags.Append(d...)

	// config
	var priorCfg configModel
	if !prior.Config.IsNull() && !prior.Config.IsUnknown() {
		diags.Append(prior.Config.As(ctx, &priorCfg, basetypes.ObjectAsOptions{})...)
	} else {
		priorCfg = configModel{Args: types.ListNull(types.StringType), Env: types.MapNull(types.StringType)}
	}
	cfg := configModel{Command: stringOrNull(ct.Config.Command), Image: stringOrNull(ct.Config.Image)}
	switch {
	case len(ct.Config.Args) > 0:
		cfg.Args, d = types.ListValueFrom(ctx, types.StringType, ct.Config.Args)
		diags.Append(d...)
	case !priorCfg.Args.IsNull() && !priorCfg.Args.IsUnknown() && len(priorCfg.Args.Elements()) == 0:
		cfg.Args = priorCfg.Args
	default:
		cfg.Args = types.ListNull(types.StringType)
	}
	priorEnv := map[string]string{}
	if !priorCfg.Env.IsNull() && !priorCfg.Env.IsUnknown() {
		diags.Append(priorCfg.Env.ElementsAs(ctx, &priorEnv, false)...)
	}
	switch {
	case len(ct.Config.Env) > 0:
		env := make(map[string]string, len(ct.Config.Env))
		for k, v := range ct.Config.Env {
			if pv, ok := priorEnv[k]; ok && v == redacted {
				v = pv
			}
			env[k] = v
		}
		cfg.Env, d = types.MapValueFrom(ctx, types.StringType, env)
		diags.Append(d...)
	case !priorCfg.Env.IsNull() && !priorCfg.Env.IsUnknown() && len(priorEnv) == 0:
		cfg.Env = priorCfg.Env
	default:
		cfg.Env = types.MapNull(types.StringType)
	}
	m.Config, d = types.ObjectValueFrom(ctx, configAttrTypes, cfg)
	diags.Append(d...)

	// health
	if ct.Health == nil {
		m.Health = types.ObjectNull(healthAttrTypes)
	} else {
		var ph healthModel
		if !prior.Health.IsNull() && !prior.Health.IsUnknown() {
			diags.Append(prior.Health.As(ctx, &ph, basetypes.ObjectAsOptions{})...)
		} else {
			ph = healthModel{Interval: DurationNull(), Timeout: DurationNull()}
		}
		h := healthModel{
			HTTP:     types.StringNull(),
			TCP:      types.BoolValue(ct.Health.TCP),
			Interval: keepDuration(ph.Interval, DurationOf(ct.Health.Interval.Std())),
			Timeout:  keepDuration(ph.Timeout, DurationOf(ct.Health.Timeout.Std())),
		}
		if ct.Health.HTTP != "" {
			h.HTTP = types.StringValue(ct.Health.HTTP)
		}
		m.Health, d = types.ObjectValueFrom(ctx, healthAttrTypes, h)
		diags.Append(d...)
	}

	// restart
	if ct.Restart == nil {
		m.Restart = types.ObjectNull(restartAttrTypes)
	} else {
		var pr restartModel
		if !prior.Restart.IsNull() && !prior.Restart.IsUnknown() {
			diags.Append(prior.Restart.As(ctx, &pr, basetypes.ObjectAsOptions{})...)
		} else {
			pr = restartModel{Interval: DurationNull(), Delay: DurationNull(), MaxDelay: DurationNull()}
		}
		r := restartModel{
			Attempts: types.Int64Null(),
			Interval: keepDuration(pr.Interval, DurationOf(ct.Restart.Interval.Std())),
			Delay:    keepDuration(pr.Delay, DurationOf(ct.Restart.Delay.Std())),
			MaxDelay: keepDuration(pr.MaxDelay, DurationOf(ct.Restart.MaxDelay.Std())),
		}
		if ct.Restart.Attempts != 0 {
			r.Attempts = types.Int64Value(int64(ct.Restart.Attempts))
		}
		m.Restart, d = types.ObjectValueFrom(ctx, restartAttrTypes, r)
		diags.Append(d...)
	}

	// resources, as written; an empty resources = {} is kept (the registry
	// stores no limits for it).
	switch {
	case ct.Resources != nil:
		m.Resources, d = types.ObjectValueFrom(ctx, resourcesAttrTypes, resourcesModel{
			Memory: stringOrNull(ct.Resources.Memory), CPU: stringOrNull(ct.Resources.CPU),
		})
		diags.Append(d...)
	case !prior.Resources.IsNull() && !prior.Resources.IsUnknown() && noLimits(ctx, prior.Resources):
		m.Resources = prior.Resources
	default:
		m.Resources = types.ObjectNull(resourcesAttrTypes)
	}

	m.setObserved(ct)
	return diags
}

// stringOrNull is s, or null when s is empty: the registry leaves out what
// was not set.
func stringOrNull(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

// noLimits reports whether a resources object sets neither memory nor cpu.
func noLimits(ctx context.Context, o types.Object) bool {
	var r resourcesModel
	if o.As(ctx, &r, basetypes.ObjectAsOptions{}).HasError() {
		return false
	}
	return r.Memory.ValueString() == "" && r.CPU.ValueString() == ""
}

// keepDuration returns prior when it means the same duration as got, so that
// "1m" written by the operator is not replaced by the registry's "1m0s".
func keepDuration(prior, got Duration) Duration {
	if prior.IsNull() || prior.IsUnknown() || got.IsNull() {
		return got
	}
	if prior.Std() == got.Std() {
		return prior
	}
	return got
}
