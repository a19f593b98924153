package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/listvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/setvalidator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/int64planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/objectplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/setplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/coexist-dev/coexist/api"
)

var (
	_ resource.Resource                   = (*ContainerResource)(nil)
	_ resource.ResourceWithConfigure      = (*ContainerResource)(nil)
	_ resource.ResourceWithImportState    = (*ContainerResource)(nil)
	_ resource.ResourceWithModifyPlan     = (*ContainerResource)(nil)
	_ resource.ResourceWithValidateConfig = (*ContainerResource)(nil)
)

// Defaults of coexist_container.
const (
	defaultDrainTimeout           = "30s"
	defaultHealthInterval         = "1s"
	defaultHealthTimeout          = "1s"
	defaultContainerCreateTimeout = 5 * time.Minute
	// A destroy waits for the drain (up to drain_timeout), then for the stop.
	deleteTimeoutMargin = 5 * time.Minute
)

// ContainerResource is coexist_container: one supervised unit on one node
// that holds one or more service versions. It is never changed in place where
// that would change what runs: any such change replaces it.
type ContainerResource struct {
	client *Client
}

// NewContainerResource returns the coexist_container resource.
func NewContainerResource() resource.Resource { return &ContainerResource{} }

func (r *ContainerResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_container"
}

func (r *ContainerResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	durationAttr := func(desc string, minD, maxD time.Duration) schema.StringAttribute {
		return schema.StringAttribute{
			MarkdownDescription: desc,
			CustomType:          DurationType{},
			Optional:            true,
			Validators:          []validator.String{validDuration(minD, maxD)},
		}
	}
	interval := durationAttr("Time between checks once the container has passed its first one, e.g. `500ms`. "+
		"Before that it is checked every 10ms, so it becomes routable as soon as it listens. Default `1s`.",
		10*time.Millisecond, time.Hour)
	interval.Computed, interval.Default = true, stringdefault.StaticString(defaultHealthInterval)
	healthTimeout := durationAttr("How long one check may take. Default `1s`.", 10*time.Millisecond, time.Hour)
	healthTimeout.Computed, healthTimeout.Default = true, stringdefault.StaticString(defaultHealthTimeout)

	resp.Schema = schema.Schema{
		MarkdownDescription: "A container: one supervised unit on one node that loads a set of service versions. " +
			"The node's agent starts it (the `exec` driver runs `config.command` as a child process with " +
			"`$PORT` set; the `oci` driver runs `config.image` in a runc container, with limits from " +
			"`resources`), health-checks it and routes calls to it through the node's gateway.\n\n" +
			"A container is never changed in place where that would change what runs: a change of `name`, " +
			"`node`, `services`, `driver`, `config`, `health` or `resources` replaces it (only `drain_timeout` and `restart` " +
			"change in place). Its `id` is the `name` plus a suffix made at create, so that with " +
			"`lifecycle { create_before_destroy = true }` the replacement runs beside the old container and " +
			"takes over before the old one drains: make-before-break, with no failed call.\n\n" +
			"Create waits until the container is running and has passed its first health check, or fails " +
			"with the container's own last output lines. Destroy waits until it has drained and stopped.\n\n" +
			"Default timeouts: `create` 5m (the agent reports a container that never passes its health check " +
			"failed after its start timeout, which ends the wait sooner), `delete` the `drain_timeout` plus 5m.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "The container's id in the registry: `name`, a dash and a 5-character suffix made at create.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"name": schema.StringAttribute{
				MarkdownDescription: fmt.Sprintf("Your name for the container: 1 to %d lowercase letters, digits and "+
					"dashes, starting with a letter or digit. The id adds a suffix to it. The registry keeps it with "+
					"the container, so an import reads it back; a container declared without one (through the API) "+
					"is imported with its id as its name.", maxContainerN),
				Required:      true,
				Validators:    []validator.String{validName(maxContainerN)},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"node": schema.StringAttribute{
				MarkdownDescription: "Id of the node whose agent runs the container (see the `coexist_nodes` data " +
					"source). The registry refuses a node that is not registered.",
				Required:      true,
				Validators:    []validator.String{validName(maxNameLen)},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"services": schema.SetNestedAttribute{
				MarkdownDescription: "The service versions the container holds, at most one version per service. " +
					"Each must be declared (`coexist_service_version`): refer to those resources so that " +
					"Terraform declares them first.",
				Required: true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"service": schema.StringAttribute{
							MarkdownDescription: "Service name.",
							Required:            true,
							Validators:          []validator.String{validName(maxNameLen)},
						},
						"version": schema.StringAttribute{
							MarkdownDescription: "Version of the service, e.g. `1.4.2`.",
							Required:            true,
							Validators:          []validator.String{validVersion()},
						},
					},
				},
				Validators:    []validator.Set{setvalidator.SizeAtLeast(1), oneVersionPerService{}},
				PlanModifiers: []planmodifier.Set{setplanmodifier.RequiresReplace()},
			},
			"driver": schema.StringAttribute{
				MarkdownDescription: "How the agent runs the container: `exec` runs `config.command` as a child " +
					"process; `oci` runs `config.image` with runc (its own pid, mount, ipc and uts namespaces, the " +
					"host's network, a read-only root with a writable `/tmp`, cgroup limits from `resources`), on " +
					"agents where runc is installed. Default `exec`.",
				Optional:      true,
				Computed:      true,
				Default:       stringdefault.StaticString("exec"),
				Validators:    []validator.String{stringvalidator.OneOf("exec", "oci")},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"config": schema.SingleNestedAttribute{
				MarkdownDescription: "What the driver runs: `command` for `exec`, `image` for `oci`.",
				Required:            true,
				Attributes: map[string]schema.Attribute{
					"command": schema.StringAttribute{
						MarkdownDescription: "The program to run (a path, or a name looked up on the agent's PATH). " +
							"It must listen on 127.0.0.1:$PORT. Required with driver `exec`; with `oci`, when set, " +
							"it replaces the image's entrypoint.",
						Optional:   true,
						Validators: []validator.String{stringvalidator.LengthAtLeast(1)},
					},
					"image": schema.StringAttribute{
						MarkdownDescription: "The image to run, for driver `oci` (and required with it): " +
							"`oci:/path/to/layout:tag` (an OCI image layout, e.g. one made by `coexist image pack`), " +
							"`oci-archive:/path/to/image.tar[:tag]`, or a registry reference (`docker://host/name:tag`, " +
							"`name:tag`). The agent unpacks it once per digest, verified against its digests.",
						Optional:   true,
						Validators: []validator.String{imageRefValidator{}},
					},
					"args": schema.ListAttribute{
						MarkdownDescription: "Its arguments (with `oci`, they replace the image's command).",
						ElementType:         types.StringType,
						Optional:            true,
						Validators:          []validator.List{listvalidator.SizeAtMost(256)},
					},
					"env": schema.MapAttribute{
						MarkdownDescription: "Extra environment variables. The values are sensitive: the registry shows " +
							"them only to operator and management tokens (and to the node's own agent). The agent " +
							"also sets `PORT`, `COEXIST_PORT`, `COEXIST_CONTAINER_ID`, `COEXIST_NODE_ID` and `COEXIST_SERVICES`.",
						ElementType: types.StringType,
						Optional:    true,
						Sensitive:   true,
						Validators: []validator.Map{
							mapvalidator.SizeAtMost(256),
							mapvalidator.KeysAre(envNameValidator{}),
						},
					},
				},
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
			},
			"health": schema.SingleNestedAttribute{
				MarkdownDescription: "How the agent decides the container is healthy: an HTTP GET of `http` that " +
					"answers 2xx, or a TCP connect to its port. A container receives calls only after its first " +
					"passing check. Without it the agent connects to the port.",
				Optional: true,
				Attributes: map[string]schema.Attribute{
					"http": schema.StringAttribute{
						MarkdownDescription: "Path of an HTTP health check, e.g. `/healthz`.",
						Optional:            true,
						Validators:          []validator.String{healthPathValidator{}},
					},
					"tcp": schema.BoolAttribute{
						MarkdownDescription: "Check with a TCP connect. Default: true when `http` is not set.",
						Optional:            true,
						Computed:            true,
						PlanModifiers:       []planmodifier.Bool{tcpDefault{}},
					},
					"interval": interval,
					"timeout":  healthTimeout,
				},
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
			},
			"restart": schema.SingleNestedAttribute{
				MarkdownDescription: "How a container that exits is restarted, as Nomad's `restart` block in its " +
					"`fail` mode: at most `attempts` restarts within any `interval`, the first after `delay`, each " +
					"further one after twice the delay before, up to `max_delay`. One more exit within the `interval` " +
					"and the agent reports the container `failed` for good (a passing health check in between resets " +
					"nothing), which plans its replacement. What is not set takes the agent's default (5 attempts in " +
					"`30m`, `1s`, `30s`). Changed in place.",
				Optional: true,
				Attributes: map[string]schema.Attribute{
					"attempts": schema.Int64Attribute{
						MarkdownDescription: "Restarts allowed within `interval`.",
						Optional:            true,
						Validators:          []validator.Int64{int64validator.Between(1, 1000)},
					},
					"interval":  durationAttr("The window in which `attempts` are counted, e.g. `30m`.", time.Second, 24*time.Hour),
					"delay":     durationAttr("Delay before the first restart within the interval, e.g. `1s`.", time.Millisecond, time.Hour),
					"max_delay": durationAttr("Longest delay before a restart, e.g. `30s`. Not shorter than `delay`.", time.Millisecond, time.Hour),
				},
				Validators: []validator.Object{restartDelays{}},
			},
			"resources": schema.SingleNestedAttribute{
				MarkdownDescription: "Limits the `oci` driver applies as cgroup limits (the `exec` driver applies " +
					"none and refuses them). Kept as written. A container killed for going over its memory is " +
					"reported with \"out of memory\" in its message.",
				Optional: true,
				Attributes: map[string]schema.Attribute{
					"memory": schema.StringAttribute{
						MarkdownDescription: "Memory limit: bytes, or a number with a unit (`KiB`, `MiB`, `GiB`, " +
							"`KB`, `MB`, `GB`), e.g. `256MiB`. At least 4MiB.",
						Optional:   true,
						Validators: []validator.String{memoryValidator},
					},
					"cpu": schema.StringAttribute{
						MarkdownDescription: "CPU limit in cores, e.g. `0.5` or `2` (0.01 to 1024).",
						Optional:            true,
						Validators:          []validator.String{cpuValidator},
					},
				},
				PlanModifiers: []planmodifier.Object{objectplanmodifier.RequiresReplace()},
			},
			"drain_timeout": schema.StringAttribute{
				MarkdownDescription: "How long a draining container may keep serving the calls in flight before it " +
					"is stopped anyway, e.g. `30s` (at most `24h`). Default `30s`. Changed in place.",
				CustomType: DurationType{},
				Optional:   true,
				Computed:   true,
				Default:    stringdefault.StaticString(defaultDrainTimeout),
				Validators: []validator.String{validDuration(time.Millisecond, 24*time.Hour)},
			},
			"state": schema.StringAttribute{
				MarkdownDescription: "What its agent last reported: `starting`, `running`, `draining`, `stopped` or " +
					"`failed`. A container that failed after it was created is planned for replacement; one stopped " +
					"because every version it holds was retired (outside Terraform) is planned for an update that " +
					"waits until it runs again, once the apply has declared its versions again.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"endpoint": schema.StringAttribute{
				MarkdownDescription: "Loopback address the container listens on (calls reach it through the node's gateway).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"pid": schema.Int64Attribute{
				MarkdownDescription: "Process id of the container on its node.",
				Computed:            true,
				PlanModifiers:       []planmodifier.Int64{int64planmodifier.UseStateForUnknown()},
			},
			"started_at": schema.StringAttribute{
				MarkdownDescription: "When the process started (RFC 3339).",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Delete: true}),
		},
	}
}

func (r *ContainerResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	c, msg := clientFrom(req.ProviderData)
	if msg != "" {
		resp.Diagnostics.AddError("Unexpected provider data", msg)
		return
	}
	r.client = c
}

// ValidateConfig checks what runs against the driver at plan time, as the
// registry does at apply (docs/design.md §6): exec runs config.command and
// applies no limits; oci runs config.image.
func (r *ContainerResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var driver, command, image, memory, cpu types.String
	for p, dst := range map[string]*types.String{
		"driver": &driver, "config.command": &command, "config.image": &image,
		"resources.memory": &memory, "resources.cpu": &cpu,
	} {
		resp.Diagnostics.Append(req.Config.GetAttribute(ctx, attrPath(p), dst)...)
	}
	if resp.Diagnostics.HasError() || driver.IsUnknown() {
		return
	}
	set := func(v types.String) bool { return v.IsUnknown() || (!v.IsNull() && v.ValueString() != "") }
	missing := func(v types.String) bool { return v.IsNull() }
	switch d := driver.ValueString(); {
	case driver.IsNull() || d == "exec":
		if missing(command) {
			attrError(&resp.Diagnostics, attrPath("config.command"), "Missing command",
				"The exec driver (the default) runs config.command, the program to run. To run an image, set "+
					"driver = \"oci\" and config.image.")
		}
		if set(image) {
			attrError(&resp.Diagnostics, attrPath("config.image"), "Image without the oci driver",
				"config.image is for driver \"oci\"; the exec driver runs config.command. Set driver = \"oci\" "+
					"to run the image.")
		}
		if set(memory) || set(cpu) {
			attrError(&resp.Diagnostics, attrPath("resources"), "Resources without the oci driver",
				"The exec driver applies no resource limits; set driver = \"oci\" (and config.image) to run "+
					"with limits.")
		}
	case d == "oci":
		if missing(image) {
			attrError(&resp.Diagnostics, attrPath("config.image"), "Missing image",
				"The oci driver runs config.image, e.g. \"oci:/path/to/layout:1.0.0\" (an image layout made "+
					"by coexist image pack).")
		}
	}
}

// attrPath turns "config.image" into a path.
func attrPath(s string) path.Path {
	parts := strings.Split(s, ".")
	p := path.Root(parts[0])
	for _, n := range parts[1:] {
		p = p.AtName(n)
	}
	return p
}

// ModifyPlan plans the replacement of a container that failed after it was
// created (it crashed past its restarts, or stopped passing its checks): it
// no longer runs what the configuration declares. A container that stopped
// because every version it holds was retired (outside Terraform) is planned
// for an update instead: the apply declares its versions again (a rollback),
// and the update waits until its agent has started it again.
func (r *ContainerResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() || req.Plan.Raw.IsNull() {
		return
	}
	var state types.String
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("state"), &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	switch state.ValueString() {
	case api.ContainerFailed:
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("state"), types.StringUnknown())...)
		resp.RequiresReplace = append(resp.RequiresReplace, path.Root("state"))
	case api.ContainerStopped:
		for _, attr := range []string{"state", "endpoint", "started_at"} {
			resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root(attr), types.StringUnknown())...)
		}
		resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("pid"), types.Int64Unknown())...)
	}
}

// Create declares the container with a fresh id (?cas=0: create only), then
// waits until its agent reports it running and healthy.
func (r *ContainerResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var plan containerModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := plan.Timeouts.Create(ctx, defaultContainerCreateTimeout)
	resp.Diagnostics.Append(diags...)
	body, diags := plan.request(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var id string
	for attempt := 0; ; attempt++ {
		id = newContainerID(plan.Name.ValueString())
		_, _, err := r.client.API.Containers().Declare(ctx, id, body, &api.WriteOptions{CAS: api.CAS(0)})
		if err == nil {
			break
		}
		if api.IsConflict(err) && attempt < 3 {
			continue // the suffix is taken: draw another
		}
		resp.Diagnostics.AddError("Cannot create container", explain(r.client, err)+declareHint(err))
		return
	}

	// From here the container exists: state is saved even when the wait
	// fails, so that Terraform marks it tainted and replaces it next time.
	plan.ID = types.StringValue(id)
	ct, err := waitRunning(ctx, r.client.API, id, false)
	plan.setObserved(ct)
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
	if err != nil {
		resp.Diagnostics.AddError("Container did not become healthy", failureDetail(r.client, id, plan.Node.ValueString(), ct, err, timeout))
	}
}

// declareHint adds advice to the registry's 400 when it is about an
// undeclared version or an unknown node.
func declareHint(err error) string {
	msg := body(err)
	switch {
	case strings.Contains(msg, "is not declared"):
		return "\n\nDeclare that version with a coexist_service_version resource and refer to it from the " +
			"container's services (e.g. version = coexist_service_version.x.version), so that Terraform declares it first."
	case strings.HasPrefix(msg, "node:"):
		return "\n\nA node is registered by its agent when the agent starts; the coexist_nodes data source lists them."
	}
	return ""
}

// failureDetail explains why a new container did not become healthy, with
// the container's own message (its last output lines) when its agent gave one.
func failureDetail(c *Client, id, node string, ct *api.Container, err error, timeout time.Duration) string {
	var cf *containerFailure
	switch {
	case errors.As(err, &cf):
		msg := cf.Message
		if msg == "" {
			msg = "(no message)"
		}
		return fmt.Sprintf("Container %s on node %s failed before it passed its first health check (state: %s). "+
			"Its agent reports:\n\n%s\n\n"+
			"The container is marked tainted: the next apply replaces it. Fix its command, its health check or the "+
			"service, then apply again.", id, node, cf.State, msg)
	case errors.Is(err, context.DeadlineExceeded):
		state, msg := "not yet reported by its agent", ""
		if ct != nil && ct.Status != nil {
			state, msg = ct.Status.State, ct.Status.Message
		}
		out := fmt.Sprintf("Container %s on node %s did not become healthy within %s (state: %s).", id, node, timeout, state)
		if msg != "" {
			out += " Its agent reports:\n\n" + msg
		}
		return out + "\n\nIs the node's agent running (coexist_nodes shows its status)? Does the container listen on " +
			"127.0.0.1:$PORT and pass its health check? Raise timeouts { create = \"...\" } for a slow start."
	}
	return fmt.Sprintf("Waiting for container %s on node %s: %s", id, node, waitErrText(c, err))
}

// Read refreshes the container. One deleted outside Terraform (or being
// deleted) is removed from state, so the next plan creates it again; one that
// failed keeps its state "failed", which ModifyPlan turns into a replacement.
func (r *ContainerResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var state containerModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ct, _, err := r.client.API.Containers().Info(ctx, state.ID.ValueString(), nil)
	if err != nil {
		if api.IsNotFound(err) {
			resp.State.RemoveResource(ctx)
			return
		}
		addAPIError(&resp.Diagnostics, r.client, "Cannot read container", err)
		return
	}
	if ct.Desired == api.DesiredDeleted {
		resp.State.RemoveResource(ctx)
		return
	}
	var next containerModel
	resp.Diagnostics.Append(next.fromAPI(ctx, ct, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &next)...)
}

// Update changes what may change in place, drain_timeout and restart, with a
// check-and-set write; the agent keeps the process running. A container
// that was stopped (every version it held retired) is waited for until its
// agent has started it again.
func (r *ContainerResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var plan containerModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	var prior types.String
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("state"), &prior)...)
	if resp.Diagnostics.HasError() {
		return
	}
	body, diags := plan.request(ctx)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	id := plan.ID.ValueString()
	for attempt := 0; ; attempt++ {
		cur, _, err := r.client.API.Containers().Info(ctx, id, nil)
		if err != nil {
			addAPIError(&resp.Diagnostics, r.client, "Cannot read container", err)
			return
		}
		_, _, err = r.client.API.Containers().Declare(ctx, id, body, &api.WriteOptions{CAS: api.CAS(cur.ModifyIndex)})
		if err == nil {
			break
		}
		if api.IsConflict(err) && attempt < 5 {
			continue // its agent reported a status in between
		}
		addAPIError(&resp.Diagnostics, r.client, "Cannot update container", err)
		return
	}
	if prior.ValueString() == api.ContainerStopped {
		r.restart(ctx, &plan, resp)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// restart waits until a container that was stopped, because every version it
// held was retired, runs again now that its versions are declared again.
func (r *ContainerResource) restart(ctx context.Context, plan *containerModel, resp *resource.UpdateResponse) {
	timeout, diags := plan.Timeouts.Create(ctx, defaultContainerCreateTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id, node := plan.ID.ValueString(), plan.Node.ValueString()

	ct, _, err := r.client.API.Containers().Info(ctx, id, nil)
	if err != nil {
		addAPIError(&resp.Diagnostics, r.client, "Cannot read container", err)
		return
	}
	retired, err := retiredVersions(ctx, r.client.API, ct.Services)
	if err != nil {
		addAPIError(&resp.Diagnostics, r.client, "Cannot read the container's versions", err)
		return
	}
	if len(retired) == len(ct.Services) {
		plan.setObserved(ct)
		resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
		resp.Diagnostics.AddError("Container stays stopped",
			fmt.Sprintf("Container %s on node %s is stopped: every version it holds is retired (%s). Its agent "+
				"starts it again once one of them is declared again (a coexist_service_version, a rollback).",
				id, node, strings.Join(retired, ", ")))
		return
	}
	ct, err = waitRunning(ctx, r.client.API, id, true)
	plan.setObserved(ct)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
	if err != nil {
		resp.Diagnostics.AddError("Container did not start again",
			fmt.Sprintf("Container %s on node %s was stopped (every version it held was retired) and did not run "+
				"again within %s: %s.\n\nA container that failed is replaced by the next apply.",
				id, node, timeout, waitErrText(r.client, err)))
	}
}

// retiredVersions returns those of refs that are retired (or gone), as
// service@version.
func retiredVersions(ctx context.Context, c *api.Client, refs []api.ServiceRef) ([]string, error) {
	var out []string
	for _, ref := range refs {
		v, err := findVersion(ctx, c, ref.Service, ref.Version)
		if err != nil {
			return nil, err
		}
		if v == nil || v.State == api.VersionRetired {
			out = append(out, ref.String())
		}
	}
	return out, nil
}

// Delete marks the container deleted and waits until its agent has drained
// and stopped it and the registry has removed it.
func (r *ContainerResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var state containerModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, state.DrainTimeout.Std()+deleteTimeoutMargin)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	id := state.ID.ValueString()
	if _, _, err := r.client.API.Containers().Delete(ctx, id, nil); err != nil {
		if api.IsNotFound(err) {
			return
		}
		addAPIError(&resp.Diagnostics, r.client, "Cannot delete container", err)
		return
	}
	last, err := waitGone(ctx, r.client.API, id)
	if err != nil {
		lastState := "unknown"
		if last != nil && last.Status != nil {
			lastState = last.Status.State
		}
		resp.Diagnostics.AddError("Container not stopped",
			fmt.Sprintf("Container %s on node %s was marked deleted but has not drained and stopped within %s "+
				"(last state: %s): %s.\n\nIts agent stops it once its calls in flight finish or its drain_timeout "+
				"passes; is the node's agent running? Raise timeouts { delete = \"...\" } for long drains.",
				id, state.Node.ValueString(), timeout, lastState, waitErrText(r.client, err)))
	}
}

// ImportState takes a container id. Read fills in the rest: the name is the
// one the container was declared with, or its id when it was declared
// without one.
func (r *ContainerResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	if msg := checkName(req.ID, maxNameLen); msg != "" {
		resp.Diagnostics.AddError("Invalid import id", "A container id is expected. "+msg)
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
}
