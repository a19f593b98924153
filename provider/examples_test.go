package provider

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Every configuration under examples/ (the ones the docs show, and the
// quickstart) is valid against this provider's schema: `terraform validate`
// with the provider built from this tree through a dev override.
func TestAccExamplesValidate(t *testing.T) {
	testAccPreCheck(t)
	t.Parallel()
	pluginDir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(pluginDir, "terraform-provider-coexist"), ".")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build the provider: %v\n%s", err, out)
	}
	rc := filepath.Join(t.TempDir(), "dev.tfrc")
	if err := os.WriteFile(rc, []byte(`provider_installation {
  dev_overrides {
    "coexist-dev/coexist" = "`+pluginDir+`"
  }
  direct {}
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The tfplugindocs layout and the quickstart; examples/ holds other
	// things too (the greeter, simulator scenarios).
	seen := map[string]bool{}
	for _, pattern := range []string{"provider", "quickstart", "resources/*", "data-sources/*"} {
		files, err := filepath.Glob(filepath.Join("..", "examples", pattern, "*.tf"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			seen[filepath.Dir(f)] = true
		}
	}
	if len(seen) < 7 {
		t.Fatalf("found only %d example folders: %v", len(seen), seen)
	}
	for dir := range seen {
		name := strings.TrimPrefix(dir, "../examples/")
		t.Run(name, func(t *testing.T) {
			work := t.TempDir()
			files, _ := filepath.Glob(filepath.Join(dir, "*.tf"))
			declared := false
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				declared = declared || strings.Contains(string(b), "required_providers")
				if err := os.WriteFile(filepath.Join(work, filepath.Base(f)), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if !declared {
				// The docs' snippets leave out the terraform block; the
				// provider's own example shows it.
				b := `terraform {
  required_providers {
    coexist = { source = "coexist-dev/coexist" }
  }
}
`
				if err := os.WriteFile(filepath.Join(work, "versions.tf"), []byte(b), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command(os.Getenv("TF_ACC_TERRAFORM_PATH"), "validate", "-json", "-no-color")
			cmd.Dir = work
			cmd.Env = append(os.Environ(), "TF_CLI_CONFIG_FILE="+rc)
			out, _ := cmd.Output()
			var res struct {
				Valid       bool `json:"valid"`
				Diagnostics []struct {
					Severity, Summary, Detail string
				} `json:"diagnostics"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("validate: %v\n%s", err, out)
			}
			if !res.Valid {
				t.Fatalf("%s is not valid: %+v", name, res.Diagnostics)
			}
			for _, d := range res.Diagnostics {
				if d.Severity == "warning" && !strings.Contains(d.Summary, "override") {
					t.Errorf("%s: warning %s: %s", name, d.Summary, d.Detail)
				}
			}
		})
	}
}
