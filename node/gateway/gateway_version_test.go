package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// A caller's version has one spelling, as a declared version has
// (api.CheckVersion): the gateway refuses any other with a 400 that names
// the header and the canonical spelling, and serves the canonical one.
func TestGatewayClientVersionCanonical(t *testing.T) { eachMode(t, testGatewayClientVersionCanonical) }

func testGatewayClientVersionCanonical(t *testing.T, mode string) {
	cl := newCluster(t, mode)
	for _, tc := range []struct{ version, canon string }{
		{"1", "1.0.0"}, {"1.0", "1.0.0"}, {"v1.0.0", "1.0.0"}, {"1.0.0+b1", "1.0.0"},
	} {
		a := do(t, http.MethodGet, cl.url1+"/greeter/x", clientV(tc.version), "")
		if a.code != http.StatusBadRequest {
			t.Fatalf("%s %q: code = %d, want 400; body %s", api.HeaderClientVersion, tc.version, a.code, a.body)
		}
		want := api.HeaderClientVersion + `: "` + tc.version + `" is not canonical; write "` + tc.canon + `"`
		if !strings.Contains(a.errorMsg, want) {
			t.Errorf("error %q does not say %q", a.errorMsg, want)
		}
	}
	if a := do(t, http.MethodGet, cl.url1+"/greeter/x", clientV("1.0.0"), ""); a.code != http.StatusOK {
		t.Errorf("canonical version: code = %d; body %s", a.code, a.body)
	}
}
