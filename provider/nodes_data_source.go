package provider

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/coexist-dev/coexist/api"
)

var (
	_ datasource.DataSource              = (*NodesDataSource)(nil)
	_ datasource.DataSourceWithConfigure = (*NodesDataSource)(nil)
)

// NodesDataSource is coexist_nodes: the nodes registered by their agents,
// optionally filtered by labels and status.
type NodesDataSource struct {
	client *Client
}

// NewNodesDataSource returns the coexist_nodes data source.
func NewNodesDataSource() datasource.DataSource { return &NodesDataSource{} }

type nodesModel struct {
	ID     types.String `tfsdk:"id"`
	Labels types.Map    `tfsdk:"labels"`
	Status types.String `tfsdk:"status"`
	Nodes  []nodeModel  `tfsdk:"nodes"`
}

type nodeModel struct {
	ID      types.String `tfsdk:"id"`
	Address types.String `tfsdk:"address"`
	Gateway types.String `tfsdk:"gateway"`
	Labels  types.Map    `tfsdk:"labels"`
	Status  types.String `tfsdk:"status"`
}

func (d *NodesDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_nodes"
}

func (d *NodesDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The nodes registered with the registry (each node's agent registers it when it " +
			"starts), sorted by id. Filter them by labels and status to choose where containers go.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "A fixed id made of the filters.",
				Computed:            true,
			},
			"labels": schema.MapAttribute{
				MarkdownDescription: "Only nodes that carry every one of these labels (`coexist agent --label key=value`).",
				ElementType:         types.StringType,
				Optional:            true,
			},
			"status": schema.StringAttribute{
				MarkdownDescription: "Only nodes in this status: `ready` or `down`.",
				Optional:            true,
				Validators:          []validator.String{stringvalidator.OneOf(api.NodeReady, api.NodeDown)},
			},
			"nodes": schema.ListNestedAttribute{
				MarkdownDescription: "The matching nodes.",
				Computed:            true,
				NestedObject: schema.NestedAttributeObject{
					Attributes: map[string]schema.Attribute{
						"id":      schema.StringAttribute{Computed: true, MarkdownDescription: "Node id."},
						"address": schema.StringAttribute{Computed: true, MarkdownDescription: "Address of its agent."},
						"gateway": schema.StringAttribute{Computed: true, MarkdownDescription: "Address of its gateway, where calls enter the node."},
						"labels": schema.MapAttribute{
							Computed: true, ElementType: types.StringType, MarkdownDescription: "Its labels.",
						},
						"status": schema.StringAttribute{Computed: true, MarkdownDescription: "`ready` while its agent heartbeats, else `down`."},
					},
				},
			},
		},
	}
}

func (d *NodesDataSource) Configure(_ context.Context, req datasource.ConfigureRequest, resp *datasource.ConfigureResponse) {
	c, msg := clientFrom(req.ProviderData)
	if msg != "" {
		resp.Diagnostics.AddError("Unexpected provider data", msg)
		return
	}
	d.client = c
}

func (d *NodesDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	if !configured(d.client, &resp.Diagnostics) {
		return
	}
	var m nodesModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	want := map[string]string{}
	if !m.Labels.IsNull() {
		resp.Diagnostics.Append(m.Labels.ElementsAs(ctx, &want, false)...)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	nodes, _, err := d.client.API.Nodes().List(ctx, nil)
	if err != nil {
		addAPIError(&resp.Diagnostics, d.client, "Cannot list nodes", err)
		return
	}
	slices.SortFunc(nodes, func(a, b api.Node) int { return strings.Compare(a.ID, b.ID) })
	m.Nodes = []nodeModel{}
	for _, n := range nodes {
		if !hasLabels(n.Labels, want) || (!m.Status.IsNull() && n.Status != m.Status.ValueString()) {
			continue
		}
		labels, diags := types.MapValueFrom(ctx, types.StringType, nonNil(n.Labels))
		resp.Diagnostics.Append(diags...)
		m.Nodes = append(m.Nodes, nodeModel{
			ID: types.StringValue(n.ID), Address: types.StringValue(n.Address), Gateway: types.StringValue(n.Gateway),
			Labels: labels, Status: types.StringValue(n.Status),
		})
	}
	m.ID = types.StringValue(filterID("nodes", want, m.Status.ValueString()))
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// hasLabels reports whether have carries every label of want.
func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// filterID makes a data source id from its kind and filters.
func filterID(kind string, labels map[string]string, extra ...string) string {
	var b strings.Builder
	b.WriteString(kind)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString("," + k + "=" + labels[k])
	}
	for _, e := range extra {
		if e != "" {
			b.WriteString("," + e)
		}
	}
	return b.String()
}
