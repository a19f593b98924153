package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// The registry answers durations as Go writes them ("1m0s"), while operators
// write "1m" or "60s". A Duration keeps what the operator wrote in state and
// compares semantically, so neither form shows as a change in a plan.
var (
	_ basetypes.StringTypable                    = DurationType{}
	_ basetypes.StringValuableWithSemanticEquals = Duration{}
)

// DurationType is the attribute type of a Go duration string ("500ms", "30s",
// "1m30s").
type DurationType struct {
	basetypes.StringType
}

// String names the type in framework messages.
func (t DurationType) String() string { return "provider.DurationType" }

// Equal reports whether o is a DurationType too.
func (t DurationType) Equal(o attr.Type) bool {
	_, ok := o.(DurationType)
	return ok
}

// ValueType returns an empty Duration.
func (t DurationType) ValueType(context.Context) attr.Value { return Duration{} }

// ValueFromString wraps a string value.
func (t DurationType) ValueFromString(_ context.Context, in basetypes.StringValue) (basetypes.StringValuable, diag.Diagnostics) {
	return Duration{StringValue: in}, nil
}

// ValueFromTerraform reads a Terraform string.
func (t DurationType) ValueFromTerraform(ctx context.Context, in tftypes.Value) (attr.Value, error) {
	v, err := t.StringType.ValueFromTerraform(ctx, in)
	if err != nil {
		return nil, err
	}
	s, ok := v.(basetypes.StringValue)
	if !ok {
		return nil, fmt.Errorf("unexpected value type %T", v)
	}
	return Duration{StringValue: s}, nil
}

// Duration is a Go duration string, compared by the duration it means.
type Duration struct {
	basetypes.StringValue
}

// NewDuration returns a known Duration written as s.
func NewDuration(s string) Duration { return Duration{StringValue: basetypes.NewStringValue(s)} }

// DurationNull returns a null Duration.
func DurationNull() Duration { return Duration{StringValue: basetypes.NewStringNull()} }

// DurationOf returns d as a Duration written the way Go writes it, or null
// when d is zero (the registry omits zero durations).
func DurationOf(d time.Duration) Duration {
	if d == 0 {
		return DurationNull()
	}
	return NewDuration(d.String())
}

// Type returns DurationType.
func (v Duration) Type(context.Context) attr.Type { return DurationType{} }

// Equal compares the written strings: the framework's own notion of a change.
func (v Duration) Equal(o attr.Value) bool {
	other, ok := o.(Duration)
	return ok && v.StringValue.Equal(other.StringValue)
}

// StringSemanticEquals reports whether both strings mean the same duration.
func (v Duration) StringSemanticEquals(_ context.Context, newValuable basetypes.StringValuable) (bool, diag.Diagnostics) {
	var diags diag.Diagnostics
	nv, ok := newValuable.(Duration)
	if !ok {
		diags.AddError("Semantic equality check error",
			fmt.Sprintf("expected a Duration, got %T; please report this issue to the provider developers", newValuable))
		return false, diags
	}
	a, errA := time.ParseDuration(v.ValueString())
	b, errB := time.ParseDuration(nv.ValueString())
	if errA != nil || errB != nil {
		return false, nil
	}
	return a == b, nil
}

// Std returns the duration, or 0 when null, unknown or unparsable (plan-time
// validation has refused the latter).
func (v Duration) Std() time.Duration {
	if v.IsNull() || v.IsUnknown() {
		return 0
	}
	d, err := time.ParseDuration(v.ValueString())
	if err != nil {
		return 0
	}
	return d
}
