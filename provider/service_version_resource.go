package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/coexist-dev/coexist/api"
)

var (
	_ resource.Resource                = (*ServiceVersionResource)(nil)
	_ resource.ResourceWithConfigure   = (*ServiceVersionResource)(nil)
	_ resource.ResourceWithImportState = (*ServiceVersionResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*ServiceVersionResource)(nil)
)

// Default timeouts of coexist_service_version.
const (
	defaultVersionCreateTimeout = 2 * time.Minute
	defaultVersionDeleteTimeout = 10 * time.Minute
)

// ServiceVersionResource is coexist_service_version: one declared version of
// a service and the range of client versions it serves.
type ServiceVersionResource struct {
	client *Client
}

// NewServiceVersionResource returns the coexist_service_version resource.
func NewServiceVersionResource() resource.Resource { return &ServiceVersionResource{} }

type serviceVersionModel struct {
	ID          types.String   `tfsdk:"id"`
	Service     types.String   `tfsdk:"service"`
	Version     types.String   `tfsdk:"version"`
	Clients     types.String   `tfsdk:"clients"`
	Description types.String   `tfsdk:"description"`
	State       types.String   `tfsdk:"state"`
	ForceRetire types.Bool     `tfsdk:"force_retire"`
	Timeouts    timeouts.Value `tfsdk:"timeouts"`
}

// versionID is the id of a service version: "service@version".
func versionID(service, version string) string { return service + "@" + version }

// parseVersionID reads "service@version" (or "service/version").
func parseVersionID(id string) (service, version string, ok bool) {
	if s, v, found := strings.Cut(id, "@"); found && s != "" && v != "" {
		return s, v, true
	}
	if s, v, found := strings.Cut(id, "/"); found && s != "" && v != "" {
		return s, v, true
	}
	return "", "", false
}

func (r *ServiceVersionResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service_version"
}

func (r *ServiceVersionResource) Schema(ctx context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Declares one version of a service and the range of client versions it serves. " +
			"Several versions of a service coexist; every call goes to the highest active version whose " +
			"`clients` range admits the caller.\n\n" +
			"Destroying it retires the version: it drains (clients move to another compatible version, " +
			"calls in flight finish) and Terraform waits until the registry reports it `retired`. " +
			"Declaring a retired version again brings it back (a rollback).\n\n" +
			"Create declares a new version, or rolls back a retired one. A version that is active or draining " +
			"already belongs to someone (another configuration, or the API): create fails and says to import " +
			"it, even when its range and description are the ones configured, so that two configurations never " +
			"share a version and the destroy of one never retires the other's.\n\n" +
			"Every write waits until it is in force: every live agent and SDK client has seen it. Destroying a " +
			"version, or narrowing its range, that would leave a live client calling the service with no " +
			"version is an error at plan time that names the clients, unless `force_retire` is set.\n\n" +
			"Default timeouts: `create` 2m (also bounds an update's wait for in force), `delete` 10m (a drain " +
			"lasts until the calls in flight finish, or the containers' `drain_timeout` passes).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "`service@version`, e.g. `greeter@1.4.2`.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"service": schema.StringAttribute{
				MarkdownDescription: "Service name: lowercase letters, digits and dashes. Changing it declares a new version (replacement).",
				Required:            true,
				Validators:          []validator.String{validName(maxNameLen)},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"version": schema.StringAttribute{
				MarkdownDescription: "Semantic version, e.g. `1.4.2`. Changing it declares a new version (replacement).",
				Required:            true,
				Validators:          []validator.String{validVersion()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"clients": schema.StringAttribute{
				MarkdownDescription: "Range of client versions this version serves, e.g. `>= 1.0, < 2.0` or `~> 1.4` " +
					"(comma-separated constraints, as in Terraform). Changed in place.",
				Required:   true,
				Validators: []validator.String{validRange()},
			},
			"description": schema.StringAttribute{
				MarkdownDescription: "Free text, up to 1024 characters. Changed in place.",
				Optional:            true,
				Computed:            true,
				Default:             stringdefault.StaticString(""),
				Validators:          []validator.String{stringvalidator.LengthAtMost(1024)},
			},
			"force_retire": schema.BoolAttribute{
				MarkdownDescription: "Retire this version, or narrow its range, even when live clients that call the " +
					"service would be left with no version to call (`?force=true`). Default false: such a plan fails " +
					"and names the clients.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
			"state": schema.StringAttribute{
				MarkdownDescription: "`active` once declared. A version retired outside Terraform leaves the " +
					"state, so the next apply declares it again (a rollback); one draining is planned to be " +
					"declared again in place, which cancels its drain.",
				Computed:      true,
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
		Blocks: map[string]schema.Block{
			"timeouts": timeouts.Block(ctx, timeouts.Opts{Create: true, Delete: true}),
		},
	}
}

func (r *ServiceVersionResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	c, msg := clientFrom(req.ProviderData)
	if msg != "" {
		resp.Diagnostics.AddError("Unexpected provider data", msg)
		return
	}
	r.client = c
}

// Create declares the version with a check-and-set write: create only, or
// the rollback of a retired version at the modify index read. A version that
// is active or draining belongs to someone else: import it instead.
func (r *ServiceVersionResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var plan serviceVersionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel, ok := plan.createTimeout(ctx, &resp.Diagnostics)
	if !ok {
		return
	}
	defer cancel()

	service, ver := plan.Service.ValueString(), plan.Version.ValueString()
	for attempt := 0; ; attempt++ {
		existing, err := findVersion(ctx, r.client.API, service, ver)
		if err != nil {
			addAPIError(&resp.Diagnostics, r.client, "Cannot read service version", err)
			return
		}
		cas := uint64(0) // create only
		if existing != nil {
			if existing.State != api.VersionRetired {
				resp.Diagnostics.AddError("Service version already exists", alreadyExists(existing))
				return
			}
			cas = existing.ModifyIndex // a rollback, unless someone else moves first
		}
		err = r.declare(ctx, &plan, &api.WriteOptions{CAS: api.CAS(cas)})
		if err == nil {
			break
		}
		if api.IsConflict(err) && attempt < 3 {
			continue // declared or changed in between: look again
		}
		addAPIError(&resp.Diagnostics, r.client, "Cannot declare service version", err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// alreadyExists explains a version that exists outside this configuration
// and how to import it.
func alreadyExists(v *api.ServiceVersion) string {
	id := versionID(v.Service, v.Version)
	return fmt.Sprintf("Version %s of service %q already exists (%s, clients %q) and is not managed by this "+
		"configuration: another configuration or the API declared it. Creating it here would share it, and "+
		"destroying either configuration would retire it for both. To manage it here, import it:\n\n"+
		"  terraform import coexist_service_version.<name> %s\n\n"+
		"or add an import block (import { to = coexist_service_version.<name>, id = %q }); otherwise remove it "+
		"from this configuration.", v.Version, v.Service, v.State, v.Clients, id, id)
}

// declare writes the planned version to the registry and fills in its
// computed attributes.
func (r *ServiceVersionResource) declare(ctx context.Context, plan *serviceVersionModel, w *api.WriteOptions) error {
	service, ver := plan.Service.ValueString(), plan.Version.ValueString()
	if plan.ForceRetire.ValueBool() {
		if w == nil {
			w = &api.WriteOptions{}
		}
		w.Force = true
	}
	sv, wm, err := r.client.API.Services().Declare(ctx, service, ver,
		api.VersionRequest{Clients: plan.Clients.ValueString(), Description: plan.Description.ValueString()}, w)
	if err != nil {
		return err
	}
	plan.ID = types.StringValue(versionID(service, ver))
	plan.State = types.StringValue(sv.State)
	// Done when every live party that routes has seen it
	// (docs/design.md §5).
	if err := r.client.API.Census().WaitInForce(ctx, wm.LastIndex, blockWait); err != nil {
		return fmt.Errorf("declared, but not in force: %w", err)
	}
	return nil
}

// ModifyPlan plans to declare again, in place, a version that is draining
// (retired outside Terraform, and not yet done): the update cancels the
// drain, and nothing restarts.
func (r *ServiceVersionResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() {
		return
	}
	r.planStranding(ctx, req, resp)
	if req.Plan.Raw.IsNull() || resp.Diagnostics.HasError() {
		return
	}
	var state types.String
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("state"), &state)...)
	if resp.Diagnostics.HasError() || state.ValueString() != api.VersionDraining {
		return
	}
	resp.Diagnostics.Append(resp.Plan.SetAttribute(ctx, path.Root("state"), types.StringValue(api.VersionActive))...)
}

// Read refreshes the version. One that is gone or retired is removed from
// state, so that the next plan declares it again (a rollback); one that is
// draining stays, and ModifyPlan plans to cancel its drain.
func (r *ServiceVersionResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var state serviceVersionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	service, ver := state.Service.ValueString(), state.Version.ValueString()
	sv, err := findVersion(ctx, r.client.API, service, ver)
	if err != nil {
		addAPIError(&resp.Diagnostics, r.client, "Cannot read service version", err)
		return
	}
	if sv == nil || sv.State == api.VersionRetired {
		resp.State.RemoveResource(ctx)
		return
	}
	state.ID = types.StringValue(versionID(service, ver))
	state.Clients = types.StringValue(sv.Clients)
	state.Description = types.StringValue(sv.Description)
	state.State = types.StringValue(sv.State)
	if state.ForceRetire.IsNull() {
		// Imported, or written before the attribute existed: the default.
		state.ForceRetire = types.BoolValue(false)
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &state)...)
}

// Update declares the version again with its new range or description;
// nothing restarts.
func (r *ServiceVersionResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var plan serviceVersionModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel, ok := plan.createTimeout(ctx, &resp.Diagnostics)
	if !ok {
		return
	}
	defer cancel()
	if err := r.declare(ctx, &plan, nil); err != nil {
		addAPIError(&resp.Diagnostics, r.client, "Cannot update service version", err)
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &plan)...)
}

// Delete retires the version and waits until the registry reports it
// retired: its containers have drained, or their drain timeout has passed.
func (r *ServiceVersionResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	if !configured(r.client, &resp.Diagnostics) {
		return
	}
	var state serviceVersionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() {
		return
	}
	timeout, diags := state.Timeouts.Delete(ctx, defaultVersionDeleteTimeout)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	service, ver := state.Service.ValueString(), state.Version.ValueString()
	if _, _, err := r.client.API.Services().Retire(ctx, service, ver, &api.WriteOptions{Force: state.ForceRetire.ValueBool()}); err != nil {
		if api.IsNotFound(err) {
			return
		}
		addAPIError(&resp.Diagnostics, r.client, "Cannot retire service version", err)
		return
	}
	if err := waitRetired(ctx, r.client.API, service, ver); err != nil {
		resp.Diagnostics.AddError("Service version not retired",
			fmt.Sprintf("Version %s of service %q is draining but was not retired within %s: %s.\n\n"+
				"Its containers drain until their calls in flight finish or their drain_timeout passes; "+
				"raise the delete timeout (timeouts { delete = \"...\" }) or look at the containers holding it.",
				ver, service, timeout, waitErrText(r.client, err)))
	}
}

// ImportState takes "service@version" (or "service/version").
func (r *ServiceVersionResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	service, ver, ok := parseVersionID(req.ID)
	if !ok {
		resp.Diagnostics.AddError("Invalid import id",
			fmt.Sprintf("%q is not a service version id: write service@version, e.g. greeter@1.4.2.", req.ID))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), versionID(service, ver))...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("service"), service)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("version"), ver)...)
}

// findVersion returns the version, or nil when the registry has no such
// service or version.
func findVersion(ctx context.Context, c *api.Client, service, ver string) (*api.ServiceVersion, error) {
	svc, _, err := c.Services().Info(ctx, service, nil)
	if err != nil {
		if api.IsNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	for i := range svc.Versions {
		if svc.Versions[i].Version == ver {
			return &svc.Versions[i], nil
		}
	}
	return nil, nil
}

// planStranding fails the plan of a destroy, or of a narrower range, that
// would leave live clients calling the service with no version to call
// (docs/design.md §5), unless force_retire is set. The registry decides,
// with the census it keeps; an unreachable registry is a warning, since the
// apply meets the same check.
func (r *ServiceVersionResource) planStranding(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.client == nil {
		return
	}
	var st serviceVersionModel
	resp.Diagnostics.Append(req.State.Get(ctx, &st)...)
	if resp.Diagnostics.HasError() || st.State.ValueString() != api.VersionActive {
		return
	}
	force := st.ForceRetire.ValueBool()
	var clients *string
	if !req.Plan.Raw.IsNull() {
		var plan serviceVersionModel
		resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
		if resp.Diagnostics.HasError() {
			return
		}
		if plan.Clients.IsUnknown() || plan.Clients.ValueString() == st.Clients.ValueString() ||
			plan.Service.ValueString() != st.Service.ValueString() || plan.Version.ValueString() != st.Version.ValueString() {
			return // no new range; a replacement is planned as a destroy of its own
		}
		force = force || plan.ForceRetire.ValueBool()
		c := plan.Clients.ValueString()
		clients = &c
	}
	if force {
		return
	}
	got, err := r.client.API.Census().Stranded(ctx, st.Service.ValueString(), st.Version.ValueString(), clients)
	if err != nil {
		resp.Diagnostics.AddWarning("Cannot check for stranded clients",
			"The registry did not say which live clients this change would strand: "+err.Error())
		return
	}
	if got.Error != "" {
		what := "Destroying this version"
		if clients != nil {
			what = "Narrowing this version's clients range"
		}
		resp.Diagnostics.AddError("Change would strand live clients",
			fmt.Sprintf("%s would leave live clients with no version to call: %s.\n\nDeclare a version that "+
				"serves them first, or set force_retire = true to do it anyway.", what, got.Error))
	}
}

// createTimeout bounds ctx by the create timeout, which also bounds an
// update's wait for its write to be in force.
func (m *serviceVersionModel) createTimeout(ctx context.Context, diags *diag.Diagnostics) (context.Context, context.CancelFunc, bool) {
	timeout, d := m.Timeouts.Create(ctx, defaultVersionCreateTimeout)
	diags.Append(d...)
	if diags.HasError() {
		return ctx, func() {}, false
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, cancel, true
}
