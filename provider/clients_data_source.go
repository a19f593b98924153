package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var (
	_ datasource.DataSource              = (*ClientsDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*ClientsDataSource)(nil)
)

// ClientsDataSource is coexist_clients: the live SDK clients the registry's
// census counts, by cohort (docs/design.md §5).
type ClientsDataSource struct {
	client *Client
}

// NewClientsDataSource returns the coexist_clients data source.
func NewClientsDataSource() datasource.DataSource { return &ClientsDataSource{} }

type clientsModel struct {
	ID       types.String  `tfsdk:"id"`
	Service  types.String  `tfsdk:"service"`
	Complete types.Bool    `tfsdk:"complete"`
	Cohorts  []cohortModel `tfsdk:"cohorts"`
}

type cohortModel struct {
	Name      types.String `tfsdk:"name"`
	Version   types.String `tfsdk:"version"`
	Instances types.Int64  `tfsdk:"instances"`
	Calls     types.List   `tfsdk:"calls"`
}

func (d *ClientsDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_clients"
}

func (d *ClientsDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The live SDK clients the registry counts in its census, grouped in cohorts " +
			"(name and version), sorted. A client is live while it watches the registry.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{MarkdownDescription: "`clients`, or `clients/<service>`.", Computed: true},
			"service": schema.StringAttribute{
				MarkdownDescription: "Only cohorts that call this service.",
				Optional:            true,
				Validators:          []validator.String{validName(maxNameLen)},
			},
			"complete": schema.BoolAttribute{
				MarkdownDescription: "False while a newly elected leader still waits for a server's census.",
				Computed:            true,
			},
			"cohorts": schema.ListNestedAttribute{
				MarkdownDescription: "The cohorts.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"name":      schema.StringAttribute{Computed: true, MarkdownDescription: "Client name."},
						"version":   schema.StringAttribute{Computed: true, MarkdownDescription: "Client version."},
						"instances": schema.Int64Attribute{Computed: true, MarkdownDescription: "Live processes."},
						"calls": schema.ListAttribute{Computed: true, ElementType: types.StringType,
							MarkdownDescription: "Services they have called."},
					},
				},
			},
		},
	}
}

func (d *ClientsDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	c, msg := clientFrom(req.ProviderData)
	if msg != "" {
		resp.Diagnostics.AddError("Unexpected provider data", msg)
		return
	}
	d.client = c
}

func (d *ClientsDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !configured(d.client, &resp.Diagnostics) {
		return
	}
	var m clientsModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	cs, _, err := d.client.API.Census().Get(ctx, nil)
	if err != nil {
		addAPIError(&resp.Diagnostics, d.client, "Cannot read the census", err)
		return
	}
	svc := m.Service.ValueString()
	m.ID = types.StringValue("clients")
	if svc != "" {
		m.ID = types.StringValue("clients/" + svc)
	}
	m.Complete = types.BoolValue(cs.Complete)
	m.Cohorts = []cohortModel{}
	for _, c := range cs.Cohorts {
		calls := false
		for _, s := range c.Calls {
			calls = calls || s == svc
		}
		if svc != "" && !calls {
			continue
		}
		list, diags := types.ListValueFrom(ctx, types.StringType, c.Calls)
		resp.Diagnostics.Append(diags...)
		m.Cohorts = append(m.Cohorts, cohortModel{Name: types.StringValue(c.Name), Version: types.StringValue(c.Version),
			Instances: types.Int64Value(int64(c.Instances)), Calls: list})
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
