package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/coexist-dev/coexist/api"
)

var (
	_ datasource.DataSource              = (*ServiceVersionsDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*ServiceVersionsDataSource)(nil)
)

// ServiceVersionsDataSource is coexist_service_versions: the declared service
// versions, optionally of one service or in one state.
type ServiceVersionsDataSource struct {
	client *Client
}

// NewServiceVersionsDataSource returns the coexist_service_versions data source.
func NewServiceVersionsDataSource() datasource.DataSource { return &ServiceVersionsDataSource{} }

type serviceVersionsModel struct {
	ID       types.String       `tfsdk:"id"`
	Service  types.String       `tfsdk:"service"`
	State    types.String       `tfsdk:"state"`
	Versions []versionItemModel `tfsdk:"versions"`
}

type versionItemModel struct {
	ID          types.String `tfsdk:"id"`
	Service     types.String `tfsdk:"service"`
	Version     types.String `tfsdk:"version"`
	Clients     types.String `tfsdk:"clients"`
	Description types.String `tfsdk:"description"`
	State       types.String `tfsdk:"state"`
}

func (d *ServiceVersionsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_service_versions"
}

func (d *ServiceVersionsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The declared service versions, sorted by service and then by version (lowest first), " +
			"with their client ranges and states. Retired versions stay listed: declaring one again is a rollback.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "A fixed id made of the filters.",
				Computed:            true,
			},
			"service": schema.StringAttribute{
				MarkdownDescription: "Only versions of this service.",
				Optional:            true,
				Validators:          []validator.String{validName(maxNameLen)},
			},
			"state": schema.StringAttribute{
				MarkdownDescription: "Only versions in this state: `active`, `draining` or `retired`.",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.OneOf(api.VersionActive, api.VersionDraining, api.VersionRetired)},
			},
			"versions": schema.ListNestedAttribute{
				MarkdownDescription: "The matching versions.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"id":          schema.StringAttribute{Computed: true, MarkdownDescription: "`service@version`, the import id of `coexist_service_version`."},
						"service":     schema.StringAttribute{Computed: true, MarkdownDescription: "Service name."},
						"version":     schema.StringAttribute{Computed: true, MarkdownDescription: "Version."},
						"clients":     schema.StringAttribute{Computed: true, MarkdownDescription: "Range of client versions it serves."},
						"description": schema.StringAttribute{Computed: true, MarkdownDescription: "Description."},
						"state":       schema.StringAttribute{Computed: true, MarkdownDescription: "`active`, `draining` or `retired`."},
					},
				},
			},
		},
	}
}

func (d *ServiceVersionsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	c, msg := clientFrom(req.ProviderData)
	if msg != "" {
		resp.Diagnostics.AddError("Unexpected provider data", msg)
		return
	}
	d.client = c
}

func (d *ServiceVersionsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !configured(d.client, &resp.Diagnostics) {
		return
	}
	var m serviceVersionsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	var services []api.Service
	if svc := m.Service.ValueString(); svc != "" {
		s, _, err := d.client.API.Services().Info(ctx, svc, nil)
		switch {
		case err == nil:
			services = []api.Service{*s}
		case api.IsNotFound(err):
		default:
			addAPIError(&resp.Diagnostics, d.client, "Cannot read service", err)
			return
		}
	} else {
		var err error
		services, _, err = d.client.API.Services().List(ctx, nil)
		if err != nil {
			addAPIError(&resp.Diagnostics, d.client, "Cannot list services", err)
			return
		}
	}
	m.Versions = []versionItemModel{}
	for _, s := range services {
		for _, v := range s.Versions {
			if !m.State.IsNull() && v.State != m.State.ValueString() {
				continue
			}
			m.Versions = append(m.Versions, versionItemModel{
				ID: types.StringValue(versionID(v.Service, v.Version)), Service: types.StringValue(v.Service),
				Version: types.StringValue(v.Version), Clients: types.StringValue(v.Clients),
				Description: types.StringValue(v.Description), State: types.StringValue(v.State),
			})
		}
	}
	m.ID = types.StringValue(filterID("service_versions", nil, m.Service.ValueString(), m.State.ValueString()))
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
