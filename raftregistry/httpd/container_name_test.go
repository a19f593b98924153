package httpd

import (
	"net/http"
	"testing"

	"github.com/coexist-dev/coexist/api"
)

// A container keeps the name it was declared with, so that a tool that made
// the id from a name (the Terraform provider) can read it back on import.
// The name is part of the declaration: another name for the same id is a
// different body.
func TestContainerName(t *testing.T) {
	e := newEnv(t)
	const body = `{"name":"legacy","node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"}}`
	r := e.do("PUT", "/v1/containers/legacy-one?cas=0", opSecret, body)
	if r.code != http.StatusOK {
		t.Fatalf("put: %d %s", r.code, r.body)
	}
	var ct api.Container
	e.do("GET", "/v1/containers/legacy-one", readSecret, "").decode(t, &ct)
	if ct.Name != "legacy" {
		t.Fatalf("name = %q, want legacy", ct.Name)
	}
	// Without a name: none is made up.
	var unnamed api.Container
	e.do("GET", "/v1/containers/c1", readSecret, "").decode(t, &unnamed)
	if unnamed.ID != "c1" || unnamed.Name != "" {
		t.Fatalf("container declared without a name: id %q name %q", unnamed.ID, unnamed.Name)
	}
	renamed := `{"name":"other","node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"}}`
	if r := e.do("PUT", "/v1/containers/legacy-one", opSecret, renamed); r.code != http.StatusConflict {
		t.Fatalf("another name for the same id: %d %s", r.code, r.body)
	}
	before := e.fake.applies()
	r = e.do("PUT", "/v1/containers/c9", opSecret, `{"name":"Legacy One","node":"n1","services":[{"service":"orders","version":"1.0.0"}],"config":{"command":"/bin/x"}}`)
	if r.code != http.StatusBadRequest || r.errorMessage(t) != `name: "Legacy One" `+nameRule {
		t.Fatalf("bad name: %d %s", r.code, r.body)
	}
	if e.fake.applies() != before {
		t.Error("a bad name reached Raft")
	}
}
