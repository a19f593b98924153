package state

import (
	"errors"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// TestValidateDriverImageResources: what a container runs must fit its
// driver, and a bad resource is refused with the field named.
func TestValidateDriverImageResources(t *testing.T) {
	base := func(mod func(r *api.ContainerRequest)) *api.ContainerRequest {
		r := &api.ContainerRequest{Node: "n1", Services: []api.ServiceRef{{Service: "greeter", Version: "1.0.0"}}}
		mod(r)
		return r
	}
	tests := []struct {
		name  string
		req   *api.ContainerRequest
		field string // "" when valid
	}{
		{"exec command", base(func(r *api.ContainerRequest) { r.Config.Command = "/bin/greeter" }), ""},
		{"oci image", base(func(r *api.ContainerRequest) {
			r.Driver, r.Config.Image = "oci", "oci:/images:1.0.0"
			r.Resources = &api.Resources{Memory: "256MiB", CPU: "0.5"}
		}), ""},
		{"unknown driver", base(func(r *api.ContainerRequest) { r.Driver, r.Config.Command = "docker", "x" }), "driver"},
		{"oci without image", base(func(r *api.ContainerRequest) { r.Driver, r.Config.Command = "oci", "x" }), "config.image"},
		{"exec with image", base(func(r *api.ContainerRequest) { r.Config.Command, r.Config.Image = "x", "oci:/i:1" }), "config.image"},
		{"exec with resources", base(func(r *api.ContainerRequest) {
			r.Config.Command, r.Resources = "x", &api.Resources{Memory: "256MiB"}
		}), "resources"},
		{"bad memory", base(func(r *api.ContainerRequest) {
			r.Driver, r.Config.Image, r.Resources = "oci", "oci:/i:1", &api.Resources{Memory: "lots"}
		}), "resources.memory"},
		{"tiny memory", base(func(r *api.ContainerRequest) {
			r.Driver, r.Config.Image, r.Resources = "oci", "oci:/i:1", &api.Resources{Memory: "1KiB"}
		}), "resources.memory"},
		{"bad cpu", base(func(r *api.ContainerRequest) {
			r.Driver, r.Config.Image, r.Resources = "oci", "oci:/i:1", &api.Resources{CPU: "-1"}
		}), "resources.cpu"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := SpecFromAPI(tt.req)
			err := ValidateContainer("c1", &s)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("ValidateContainer: %v; want valid", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("ValidateContainer: %v; want an error naming %s", err, tt.field)
			}
		})
	}
}

func TestParseResources(t *testing.T) {
	for in, want := range map[string]int64{"256MiB": 256 << 20, "1GiB": 1 << 30, "512M": 512e6, "67108864": 64 << 20, "0.5GiB": 512 << 20} {
		if got, err := api.ParseMemory(in); err != nil || got != want {
			t.Errorf("ParseMemory(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if got, err := api.ParseCPU("0.5"); err != nil || got != 0.5 {
		t.Errorf("ParseCPU(0.5) = %v, %v", got, err)
	}
}
