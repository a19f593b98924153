package httpd

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestMetricsLabelsBounded: requests with methods of the caller's own
// making, on routes and off them, with or without a token, add no label
// value: the method label takes a fixed set, the code its class.
func TestMetricsLabelsBounded(t *testing.T) {
	e := newEnv(t)
	for i := range 50 {
		m := fmt.Sprintf("X%040d", i)
		e.do(m, "/v1/services", "", "")
		e.do(m, "/v1/nowhere", readSecret, "")
	}
	r := e.do("GET", "/v1/metrics", readSecret, "")
	if strings.Contains(r.body, "X0000") {
		t.Errorf("a caller's method is a label value:\n%s", r.body)
	}
	labels := regexp.MustCompile(`coexist_http_request[a-z_]*\{[^}]*\}`).FindAllString(r.body, -1)
	method := regexp.MustCompile(`method="([^"]*)"`)
	code := regexp.MustCompile(`code="([^"]*)"`)
	for _, l := range labels {
		if m := method.FindStringSubmatch(l); m != nil && !map[string]bool{"GET": true, "PUT": true, "POST": true, "DELETE": true, "HEAD": true, "other": true}[m[1]] {
			t.Errorf("method label %q outside the fixed set in %s", m[1], l)
		}
		if c := code.FindStringSubmatch(l); c != nil && !regexp.MustCompile(`^[1-5]xx$`).MatchString(c[1]) {
			t.Errorf("code label %q is not a status class in %s", c[1], l)
		}
	}
	if !strings.Contains(r.body, `coexist_http_requests_total{code="4xx",method="other",route="unmatched"} 100`) {
		t.Errorf("requests of unknown methods not counted as other:\n%s", r.body)
	}
}
