package api_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

func TestPurgeRequests(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.HeaderIndex, "42")
		if r.URL.Path == "/v1/services/orders" {
			writeJSON(w, 200, api.Service{Name: "orders", Versions: []api.ServiceVersion{{Service: "orders", Version: "1.0.0", State: api.VersionRetired}}})
			return
		}
		writeJSON(w, 200, api.ServiceVersion{Service: "orders", Version: "1.0.0", State: api.VersionRetired})
	})
	c := f.client(t, "tok")
	ctx := context.Background()

	v, wm, err := c.Services().PurgeVersion(ctx, "orders", "1.0.0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.last(); s.Method != http.MethodDelete || s.Path != "/v1/services/orders/versions/1.0.0" || s.RawQuery != "purge=true" {
		t.Errorf("sent %s %s?%s", s.Method, s.Path, s.RawQuery)
	}
	if v.State != api.VersionRetired || wm.LastIndex != 42 {
		t.Errorf("answer %+v, index %d", v, wm.LastIndex)
	}

	svc, _, err := c.Services().Purge(ctx, "orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := f.last(); s.Method != http.MethodDelete || s.Path != "/v1/services/orders" || s.RawQuery != "" {
		t.Errorf("sent %s %s?%s", s.Method, s.Path, s.RawQuery)
	}
	if svc.Name != "orders" || len(svc.Versions) != 1 {
		t.Errorf("answer %+v", svc)
	}
	if _, _, err := c.Services().Purge(ctx, "", nil); err == nil {
		t.Error("empty service: no error")
	}
}
