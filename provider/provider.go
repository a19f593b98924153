// Package provider is the Terraform provider of coexist
// (terraform-plugin-framework, protocol 6): operators declare with
// `terraform apply` which service versions coexist and in which containers on
// which nodes; the registry and the node agents do the rest.
//
// It speaks to the registry only through package api, and never imports
// raftregistry, node or cmd (docs/design.md §3).
package provider

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/coexist-dev/coexist/api"
)

var _ provider.Provider = (*CoexistProvider)(nil)

// CoexistProvider is the coexist provider.
type CoexistProvider struct {
	// version is the provider's version, "dev" when built locally and
	// "test" in acceptance tests.
	version string
}

// providerModel is the provider block.
type providerModel struct {
	Address  types.String `tfsdk:"address"`
	Token    types.String `tfsdk:"token"`
	CAFile   types.String `tfsdk:"ca_file"`
	CertFile types.String `tfsdk:"cert_file"`
	KeyFile  types.String `tfsdk:"key_file"`
}

// Client is what the provider hands to its resources and data sources: a
// registry client and the address it talks to, for messages.
type Client struct {
	API     *api.Client
	Address string
}

// New returns a constructor of the provider, as providerserver wants it.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &CoexistProvider{version: version}
	}
}

// Metadata names the provider "coexist": its resources are coexist_*.
func (p *CoexistProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "coexist"
	resp.Version = p.version
}

// Schema describes the provider block.
func (p *CoexistProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "The coexist provider declares which versions of a service run side by side, " +
			"and in which containers on which nodes. The coexist registry stores that desired state; " +
			"the node agents start, health-check, drain and stop the containers.\n\n" +
			"Every setting may also come from the environment: `COEXIST_ADDR`, `COEXIST_TOKEN`, " +
			"`COEXIST_CACERT`, `COEXIST_CLIENT_CERT` and `COEXIST_CLIENT_KEY`.",
		Attributes: map[string]schema.Attribute{
			"address": schema.StringAttribute{
				MarkdownDescription: "URL of the coexist registry's HTTP API, e.g. `http://127.0.0.1:7700` " +
					"(any server of the cluster; followers forward writes). Defaults to the environment " +
					"variable `COEXIST_ADDR`, then `" + api.DefaultAddress + "`.",
				Optional: true,
			},
			"token": schema.StringAttribute{
				MarkdownDescription: "ACL token sent as a bearer token. Resources need a token of the `operator` " +
					"or `management` role; data sources accept any role. Defaults to the environment variable " +
					"`COEXIST_TOKEN`.",
				Optional:  true,
				Sensitive: true,
			},
			"ca_file": schema.StringAttribute{
				MarkdownDescription: "PEM file of the CA certificates that sign the registry's certificate, for an " +
					"`https://` address. Defaults to `COEXIST_CACERT`; without it the system roots are used.",
				Optional: true,
			},
			"cert_file": schema.StringAttribute{
				MarkdownDescription: "PEM client certificate presented to the registry (with `key_file`). " +
					"Defaults to `COEXIST_CLIENT_CERT`.",
				Optional: true,
			},
			"key_file": schema.StringAttribute{
				MarkdownDescription: "PEM key of `cert_file`. Defaults to `COEXIST_CLIENT_KEY`.",
				Optional:            true,
			},
		},
	}
}

// Configure builds the registry client and checks, once, that the registry
// answers and accepts the token: a wrong address or token then fails the plan
// with a message that says which, rather than every resource failing alike.
func (p *CoexistProvider) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var cfg providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &cfg)...)
	if resp.Diagnostics.HasError() {
		return
	}
	for name, v := range map[string]types.String{
		"address": cfg.Address, "token": cfg.Token, "ca_file": cfg.CAFile, "cert_file": cfg.CertFile, "key_file": cfg.KeyFile,
	} {
		if v.IsUnknown() {
			resp.Diagnostics.AddAttributeError(path.Root(name), "Unknown coexist provider setting",
				fmt.Sprintf("The provider's %q is not known until apply. Set it to a value known at plan time "+
					"(a literal, a variable, or the environment).", name))
		}
	}
	if resp.Diagnostics.HasError() {
		return
	}

	conf := &api.Config{
		Address: firstOf(cfg.Address, os.Getenv(api.EnvAddress), api.DefaultAddress),
		Token:   firstOf(cfg.Token, os.Getenv(api.EnvToken)),
		TLS: api.TLSConfig{
			CAFile:   firstOf(cfg.CAFile, os.Getenv(api.EnvCACert)),
			CertFile: firstOf(cfg.CertFile, os.Getenv(api.EnvClientCert)),
			KeyFile:  firstOf(cfg.KeyFile, os.Getenv(api.EnvClientKey)),
		},
	}
	c, err := api.NewClient(conf)
	if err != nil {
		resp.Diagnostics.AddError("Invalid coexist provider settings",
			fmt.Sprintf("%s.\n\nCheck the provider's address (or COEXIST_ADDR) and its TLS files "+
				"(ca_file, cert_file, key_file or COEXIST_CACERT, COEXIST_CLIENT_CERT, COEXIST_CLIENT_KEY).", err))
		return
	}
	client := &Client{API: c, Address: c.Address()}
	if conf.Token == "" {
		resp.Diagnostics.AddError("No coexist registry token",
			fmt.Sprintf("The registry at %s needs a token and none is set.\n\n"+
				"Set the provider's token (or the environment variable COEXIST_TOKEN) to an ACL token: "+
				"operator or management for resources, any role for data sources. "+
				"`coexist agent --dev` prints its management token, or takes it from COEXIST_MANAGEMENT_TOKEN.",
				client.Address))
		return
	}
	checkCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := checkRegistry(checkCtx, c); err != nil {
		addAPIError(&resp.Diagnostics, client, configureSummary(err), err)
		return
	}
	resp.ResourceData = client
	resp.DataSourceData = client
}

// checkRegistry reaches the registry with an unauthenticated call, then
// checks the token with the cheapest authenticated read. A registry that has
// just started may not know its leader yet: that is waited for.
func checkRegistry(ctx context.Context, c *api.Client) error {
	for {
		_, _, err := c.Status().Leader(ctx, nil)
		if err == nil {
			break
		}
		if !isNoLeader(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
	_, _, err := c.Nodes().List(ctx, nil)
	return err
}

// firstOf returns the configured value when set, else the first non-empty
// fallback.
func firstOf(v types.String, fallbacks ...string) string {
	if !v.IsNull() && !v.IsUnknown() && v.ValueString() != "" {
		return v.ValueString()
	}
	for _, f := range fallbacks {
		if f != "" {
			return f
		}
	}
	return ""
}

// Resources lists the provider's resources.
func (p *CoexistProvider) Resources(_ context.Context) []func() resource.Resource {
	return []func() resource.Resource{
		NewServiceVersionResource,
		NewContainerResource,
	}
}

// DataSources lists the provider's data sources.
func (p *CoexistProvider) DataSources(_ context.Context) []func() datasource.DataSource {
	return []func() datasource.DataSource{
		NewNodesDataSource,
		NewClientsDataSource,
		NewRouteDataSource,
		NewServiceVersionsDataSource,
	}
}

// clientFrom turns ProviderData into the Client, or says why it cannot.
func clientFrom(data any) (*Client, string) {
	if data == nil {
		return nil, ""
	}
	c, ok := data.(*Client)
	if !ok {
		return nil, fmt.Sprintf("expected *provider.Client, got %T; please report this issue to the provider developers", data)
	}
	return c, ""
}

// configured reports whether c is set, and adds an error when it is not: the
// provider failed to configure, or Terraform called before configuring it.
func configured(c *Client, diags *diag.Diagnostics) bool {
	if c == nil {
		diags.AddError("Provider not configured",
			"The coexist provider has no registry client. Check the provider block (address, token) and the "+
				"errors above; please report this issue to the provider developers if there are none.")
		return false
	}
	return true
}
