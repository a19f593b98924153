package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework-validators/mapvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/coexist-dev/coexist/api"
)

var (
	_ datasource.DataSource              = (*RouteDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*RouteDataSource)(nil)
)

// RouteDataSource is coexist_route: which service version, and which
// containers, serve a client of a given version, as routing.Select decides it
// on the registry's table.
type RouteDataSource struct {
	client *Client
}

// NewRouteDataSource returns the coexist_route data source.
func NewRouteDataSource() datasource.DataSource { return &RouteDataSource{} }

type routeModel struct {
	ID            types.String          `tfsdk:"id"`
	Service       types.String          `tfsdk:"service"`
	ClientVersion types.String          `tfsdk:"client_version"`
	ClientName    types.String          `tfsdk:"client_name"`
	Requires      types.Map             `tfsdk:"requires"`
	Version       types.String          `tfsdk:"version"`
	State         types.String          `tfsdk:"state"`
	Clients       types.String          `tfsdk:"clients"`
	Reason        types.String          `tfsdk:"reason"`
	Containers    []routeContainerModel `tfsdk:"containers"`
}

type routeContainerModel struct {
	ID       types.String `tfsdk:"id"`
	Node     types.String `tfsdk:"node"`
	Gateway  types.String `tfsdk:"gateway"`
	Endpoint types.String `tfsdk:"endpoint"`
}

func (d *RouteDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_route"
}

func (d *RouteDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Where a call from a client of a given version goes: the service version the " +
			"routing rule chooses (the highest active version whose `clients` range admits the client and that " +
			"meets the client's own requirement, with a running container) and the containers that hold it.\n\n" +
			"When no version is compatible it does not fail: `version` is null, `containers` empty and `reason` " +
			"holds the registry's explanation. A failing read would block the plan that brings a version back " +
			"(a version retired outside Terraform, a node down). To hold every client generation to a version, " +
			"assert on it, e.g. in a `check` block (`condition = data.coexist_route.x.version != null`).",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "`service@version` of the chosen version; `service?client_version=V` when there is none.",
				Computed:            true,
			},
			"service": schema.StringAttribute{
				MarkdownDescription: "The service called.",
				Required:            true,
				Validators:          []validator.String{validName(maxNameLen)},
			},
			"client_version": schema.StringAttribute{
				MarkdownDescription: "The calling client's version, e.g. `1.3.0`.",
				Required:            true,
				Validators:          []validator.String{validVersion()},
			},
			"client_name": schema.StringAttribute{
				MarkdownDescription: "The calling client's name.",
				Optional:            true,
			},
			"requires": schema.MapAttribute{
				MarkdownDescription: "The client's own requirement per service, e.g. `{ greeter = \"~> 1.4\" }`.",
				ElementType:         types.StringType,
				Optional:            true,
				Validators: []validator.Map{
					mapvalidator.KeysAre(validName(maxNameLen)),
					mapvalidator.ValueStringsAre(validRange()),
				},
			},
			"version": schema.StringAttribute{
				MarkdownDescription: "The chosen service version; null when no version is compatible.",
				Computed:            true,
			},
			"state": schema.StringAttribute{
				MarkdownDescription: "Its state: `active`, or `draining` when the client has nothing else.",
				Computed:            true,
			},
			"clients": schema.StringAttribute{
				MarkdownDescription: "Its range of client versions.",
				Computed:            true,
			},
			"reason": schema.StringAttribute{
				MarkdownDescription: "Why it was chosen, or why no version is compatible.",
				Computed:            true,
			},
			"containers": schema.ListNestedAttribute{
				MarkdownDescription: "The containers able to serve the call, best first.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"id":       schema.StringAttribute{Computed: true, MarkdownDescription: "Container id."},
						"node":     schema.StringAttribute{Computed: true, MarkdownDescription: "Its node."},
						"gateway":  schema.StringAttribute{Computed: true, MarkdownDescription: "The node's gateway: where to send the call."},
						"endpoint": schema.StringAttribute{Computed: true, MarkdownDescription: "The container's loopback endpoint on its node."},
					},
				},
			},
		},
	}
}

func (d *RouteDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	c, msg := clientFrom(req.ProviderData)
	if msg != "" {
		resp.Diagnostics.AddError("Unexpected provider data", msg)
		return
	}
	d.client = c
}

func (d *RouteDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !configured(d.client, &resp.Diagnostics) {
		return
	}
	var m routeModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	rr := api.RouteRequest{
		Service:       m.Service.ValueString(),
		Client:        m.ClientName.ValueString(),
		ClientVersion: m.ClientVersion.ValueString(),
	}
	if !m.Requires.IsNull() {
		resp.Diagnostics.Append(m.Requires.ElementsAs(ctx, &rr.Requires, false)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	rt, _, err := d.client.API.Route(ctx, rr, nil)
	if api.IsNotFound(err) {
		// No compatible version (or no such service): an answer, not an
		// error, so that a plan that declares one is not blocked by it.
		m.ID = types.StringValue(fmt.Sprintf("%s?client_version=%s", rr.Service, rr.ClientVersion))
		m.Version, m.State, m.Clients = types.StringNull(), types.StringNull(), types.StringNull()
		m.Reason = types.StringValue(body(err))
		m.Containers = []routeContainerModel{}
		resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
		return
	}
	if err != nil {
		addAPIError(&resp.Diagnostics, d.client, "Cannot read route", err)
		return
	}
	m.ID = types.StringValue(versionID(rt.Service, rt.Version))
	m.Version = types.StringValue(rt.Version)
	m.State = types.StringValue(rt.State)
	m.Clients = types.StringValue(rt.Clients)
	m.Reason = types.StringValue(rt.Reason)
	m.Containers = []routeContainerModel{}
	for _, c := range rt.Containers {
		m.Containers = append(m.Containers, routeContainerModel{
			ID: types.StringValue(c.ID), Node: types.StringValue(c.Node),
			Gateway: types.StringValue(c.Gateway), Endpoint: types.StringValue(c.Endpoint),
		})
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
