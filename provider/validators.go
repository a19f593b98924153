package provider

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// Plan-time validation: the same rules the registry applies, so that a typo
// fails `terraform plan` with a message that names the attribute, not the
// apply halfway through. What needs the registry's state (does this node or
// service version exist?) is left to the registry, whose 400 names the field.

// attrError adds a validation error for path p. Terraform points a
// diagnostic at the attribute's line only for top-level attributes; inside a
// nested attribute it shows the resource, so the message names the
// attribute itself.
func attrError(diags *diag.Diagnostics, p path.Path, summary, detail string) {
	if len(p.Steps()) > 1 {
		detail = readablePath(p) + ": " + detail
	}
	diags.AddAttributeError(p, summary, detail)
}

// readablePath writes p as an operator reads it: health.http,
// config.env["A"], services.version (a set element has no index to show).
func readablePath(p path.Path) string {
	var b strings.Builder
	for _, st := range p.Steps() {
		switch st := st.(type) {
		case path.PathStepAttributeName:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(string(st))
		case path.PathStepElementKeyInt:
			fmt.Fprintf(&b, "[%d]", int64(st))
		case path.PathStepElementKeyString:
			fmt.Fprintf(&b, "[%q]", string(st))
		}
	}
	return b.String()
}

// shortDuration writes d the way an operator would: 24h, not 24h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// maxNameLen is the longest name the registry takes.
const maxNameLen = api.MaxNameLen

// nameValidator checks a registry name: lowercase letters, digits and dashes,
// starting with a letter or digit, at most max characters.
type nameValidator struct{ max int }

func validName(maxLen int) validator.String { return nameValidator{max: maxLen} }

func (v nameValidator) Description(context.Context) string {
	return fmt.Sprintf("1 to %d lowercase letters, digits and dashes, starting with a letter or digit", v.max)
}

func (v nameValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v nameValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	if err := checkName(s, v.max); err != "" {
		attrError(&resp.Diagnostics, req.Path, "Invalid name", err)
	}
}

// checkName returns what is wrong with name s, or "".
func checkName(s string, maxLen int) string {
	switch {
	case s == "":
		return "The name must not be empty."
	case len(s) > maxLen && maxLen == maxContainerN:
		return fmt.Sprintf("%q is %d characters long; at most %d are allowed: the container's id adds a dash "+
			"and a suffix to it, and ids are at most %d characters.", s, len(s), maxLen, maxNameLen)
	case len(s) > maxLen:
		return fmt.Sprintf("%q is %d characters long; at most %d are allowed.", s, len(s), maxLen)
	case api.CheckName(s) != nil:
		return fmt.Sprintf("%q is not a valid name: use 1 to %d lowercase letters, digits and dashes, "+
			"starting with a letter or digit.", s, maxLen)
	}
	return ""
}

// versionValidator checks a semantic version string ("1.4.2").
type versionValidator struct{}

func validVersion() validator.String { return versionValidator{} }

func (versionValidator) Description(context.Context) string {
	return "a semantic version, such as 1.4.2"
}

func (v versionValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (versionValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if msg := checkVersion(req.ConfigValue.ValueString()); msg != "" {
		attrError(&resp.Diagnostics, req.Path, "Invalid version", msg)
	}
}

// checkVersion returns what is wrong with version s, or "": the registry's
// own rule (api.CheckVersion), so that plan refuses what apply would.
func checkVersion(s string) string {
	if err := api.CheckVersion(s); err != nil {
		return sentence("version", err)
	}
	return ""
}

// sentence writes a wire rule's reason as a sentence about what:
// "The version must not be empty."
func sentence(what string, err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "must ") || strings.HasPrefix(msg, "is ") {
		msg = "The " + what + " " + msg
	}
	return msg + "."
}

// constraintValidator checks a version range (">= 1.0, < 2.0", "~> 1.4").
type constraintValidator struct{}

func validRange() validator.String { return constraintValidator{} }

func (constraintValidator) Description(context.Context) string {
	return `a version range, such as ">= 1.0, < 2.0" or "~> 1.4"`
}

func (v constraintValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (constraintValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if msg := checkRange(req.ConfigValue.ValueString()); msg != "" {
		attrError(&resp.Diagnostics, req.Path, "Invalid version range", msg)
	}
}

// checkRange returns what is wrong with version range s, or "": the
// registry's own rule (api.CheckRange).
func checkRange(s string) string {
	if err := api.CheckRange(s); err != nil {
		return sentence("version range", err)
	}
	return ""
}

// durationValidator checks a Go duration string within [min, max].
type durationValidator struct{ min, max time.Duration }

func validDuration(minD, maxD time.Duration) validator.String {
	return durationValidator{min: minD, max: maxD}
}

func (v durationValidator) Description(context.Context) string {
	return fmt.Sprintf("a duration such as 500ms, 30s or 1m30s, between %s and %s", shortDuration(v.min), shortDuration(v.max))
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if msg := checkDuration(req.ConfigValue.ValueString(), v.min, v.max); msg != "" {
		attrError(&resp.Diagnostics, req.Path, "Invalid duration", msg)
	}
}

func checkDuration(s string, minD, maxD time.Duration) string {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Sprintf("%q is not a valid duration: write a number with a unit, such as 500ms, 30s or 1m30s "+
			"(units: ms, s, m, h).", s)
	}
	if d < minD || d > maxD {
		return fmt.Sprintf("%q is out of range: it must be between %s and %s.", s, shortDuration(minD), shortDuration(maxD))
	}
	return ""
}

// healthPathValidator checks an HTTP health check path.
type healthPathValidator struct{}

func (healthPathValidator) Description(context.Context) string {
	return "an HTTP path starting with /, such as /healthz"
}

func (v healthPathValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (healthPathValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if s := req.ConfigValue.ValueString(); !strings.HasPrefix(s, "/") {
		attrError(&resp.Diagnostics, req.Path, "Invalid health check path",
			fmt.Sprintf("%q must be an HTTP path starting with /, such as /healthz.", s))
	}
}

// envNameValidator checks an environment variable name.
type envNameValidator struct{}

func (envNameValidator) Description(context.Context) string {
	return "an environment variable name: not empty, without = or NUL"
}

func (v envNameValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (envNameValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if s := req.ConfigValue.ValueString(); s == "" || strings.ContainsAny(s, "=\x00") {
		attrError(&resp.Diagnostics, req.Path, "Invalid environment variable name",
			fmt.Sprintf("%q is not a valid environment variable name: it must not be empty or contain = or NUL.", s))
	}
}

// imageRefValidator checks an image reference as the registry does: not
// blank, at most 4096 bytes, no NUL or newline.
type imageRefValidator struct{}

func (imageRefValidator) Description(context.Context) string {
	return "an image reference, such as oci:/path/to/layout:1.0.0"
}

func (v imageRefValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (imageRefValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	switch s := req.ConfigValue.ValueString(); {
	case strings.TrimSpace(s) == "":
		attrError(&resp.Diagnostics, req.Path, "Invalid image", "The image must not be empty.")
	case len(s) > maxImageRef || strings.ContainsAny(s, "\x00\n"):
		attrError(&resp.Diagnostics, req.Path, "Invalid image",
			fmt.Sprintf("%q is not an image reference: write e.g. oci:/path/to/layout:1.0.0 (at most %d bytes, "+
				"no NUL or newline).", s, maxImageRef))
	}
}

// maxImageRef is the longest image reference the registry takes.
const maxImageRef = 4096

// limitValidator checks a resources limit with the registry's own rule
// (api.ParseMemory, api.ParseCPU).
type limitValidator struct {
	what, desc string
	parse      func(string) error
}

var (
	memoryValidator = limitValidator{what: "memory limit", desc: "a memory size such as 256MiB or 1GiB, at least 4MiB",
		parse: func(s string) error { _, err := api.ParseMemory(s); return err }}
	cpuValidator = limitValidator{what: "CPU limit",
		desc:  fmt.Sprintf("a number of cores such as 0.5 or 2, between %g and %d", api.MinCPU, api.MaxCPU),
		parse: func(s string) error { _, err := api.ParseCPU(s); return err }}
)

func (v limitValidator) Description(context.Context) string { return v.desc }

func (v limitValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v limitValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.parse(req.ConfigValue.ValueString()); err != nil {
		attrError(&resp.Diagnostics, req.Path, "Invalid "+v.what, sentence(v.what, err))
	}
}
