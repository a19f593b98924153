package provider

import (
	"context"
	"fmt"

	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// tcpDefault plans health.tcp when it is not configured the way the registry
// fills it in: true when the check has no http path, false otherwise.
type tcpDefault struct{}

func (tcpDefault) Description(context.Context) string {
	return "Defaults to true when http is not set."
}

func (m tcpDefault) MarkdownDescription(ctx context.Context) string { return m.Description(ctx) }

func (tcpDefault) PlanModifyBool(ctx context.Context, req planmodifier.BoolRequest, resp *planmodifier.BoolResponse) {
	if !req.ConfigValue.IsNull() {
		return
	}
	var httpPath types.String
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, req.Path.ParentPath().AtName("http"), &httpPath)...)
	if resp.Diagnostics.HasError() || httpPath.IsUnknown() {
		return
	}
	resp.PlanValue = types.BoolValue(httpPath.IsNull() || httpPath.ValueString() == "")
}

// oneVersionPerService refuses a services set that names a service twice: a
// container holds at most one version per service.
type oneVersionPerService struct{}

func (oneVersionPerService) Description(context.Context) string {
	return "at most one version per service"
}

func (v oneVersionPerService) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (oneVersionPerService) ValidateSet(ctx context.Context, req validator.SetRequest, resp *validator.SetResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	seen := map[string]string{}
	for _, el := range req.ConfigValue.Elements() {
		obj, ok := el.(types.Object)
		if !ok || obj.IsNull() || obj.IsUnknown() {
			continue
		}
		svc, ok1 := obj.Attributes()["service"].(types.String)
		ver, ok2 := obj.Attributes()["version"].(types.String)
		if !ok1 || !ok2 || svc.IsUnknown() || svc.IsNull() {
			continue
		}
		if prev, dup := seen[svc.ValueString()]; dup {
			resp.Diagnostics.AddAttributeError(req.Path, "Service named twice",
				fmt.Sprintf("Service %q is named twice (versions %s and %s): a container holds at most one version "+
					"per service. Put the other version in a container of its own.", svc.ValueString(), prev, ver.ValueString()))
			return
		}
		seen[svc.ValueString()] = ver.ValueString()
	}
}

// restartDelays refuses a restart.max_delay shorter than restart.delay at
// plan time, as the registry would at apply.
type restartDelays struct{}

func (restartDelays) Description(context.Context) string {
	return "max_delay is not shorter than delay"
}

func (v restartDelays) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (restartDelays) ValidateObject(_ context.Context, req validator.ObjectRequest, resp *validator.ObjectResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	delay, ok1 := req.ConfigValue.Attributes()["delay"].(Duration)
	maxDelay, ok2 := req.ConfigValue.Attributes()["max_delay"].(Duration)
	if !ok1 || !ok2 || delay.Std() == 0 || maxDelay.Std() == 0 || maxDelay.Std() >= delay.Std() {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid restart delays",
		fmt.Sprintf("restart.max_delay (%s) is shorter than restart.delay (%s): the delay before a restart starts at "+
			"delay and doubles up to max_delay.", maxDelay.ValueString(), delay.ValueString()))
}
