package httpd

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// queryOptions are the read parameters of a request.
type queryOptions struct {
	stale      bool
	consistent bool
	// index is the ?index of a blocking query; 0 means do not block.
	index uint64
	// wait is the ?wait asked for, 0 when not given.
	wait time.Duration
}

// parseQuery reads ?stale, ?consistent, ?index and ?wait.
func parseQuery(r *http.Request) (queryOptions, error) {
	var q queryOptions
	v := r.URL.Query()
	var err error
	if q.stale, err = flag(v.Has("stale"), v.Get("stale"), "stale"); err != nil {
		return q, err
	}
	if q.consistent, err = flag(v.Has("consistent"), v.Get("consistent"), "consistent"); err != nil {
		return q, err
	}
	if q.stale && q.consistent {
		return q, badRequest("stale", "cannot be combined with consistent: choose one")
	}
	if s := v.Get("index"); s != "" {
		if q.index, err = strconv.ParseUint(s, 10, 64); err != nil {
			return q, badRequest("index", "%q is not a non-negative integer", s)
		}
	}
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return q, badRequest("wait", "%q is not a duration such as \"30s\" or \"5m\"", s)
		}
		if d < 0 {
			return q, badRequest("wait", "must not be negative, got %s", s)
		}
		q.wait = d
	}
	return q, nil
}

// flag reads a bare query flag: "?stale" and "?stale=true" set it,
// "?stale=false" does not.
func flag(present bool, s, name string) (bool, error) {
	if !present {
		return false, nil
	}
	if s == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest(name, "%q is not true or false (a bare ?%s is true)", s, name)
	}
	return b, nil
}

// parseCAS reads ?cas; nil when absent.
func parseCAS(r *http.Request) (*uint64, error) {
	v := r.URL.Query()
	if !v.Has("cas") {
		return nil, nil
	}
	s := v.Get("cas")
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, badRequest("cas", "%q is not a modify index (a non-negative integer; 0 means create only)", s)
	}
	return &n, nil
}

// readBody reads the whole request body, up to maxBody.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, httpErrorf(http.StatusBadRequest, "read request body: %v", err)
	}
	return b, nil
}

// decodeJSON reads one JSON object from body into v, rejecting unknown
// fields, with a message that names what is wrong.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return httpErrorf(http.StatusBadRequest, "request body is empty: expected a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(body, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return httpErrorf(http.StatusBadRequest, "request body holds more than one JSON value")
	}
	return nil
}

func describeJSONError(body []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return httpErrorf(http.StatusBadRequest, "request body is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return httpErrorf(http.StatusBadRequest, "request body is not valid JSON: unexpected end of input")
	case errors.As(err, &te):
		if te.Field == "" {
			return httpErrorf(http.StatusBadRequest, "request body must be a JSON object, got %s", te.Value)
		}
		return httpErrorf(http.StatusBadRequest, "wrong type for field %q: expected %s, got %s", te.Field, jsonKind(te.Type), te.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return httpErrorf(http.StatusBadRequest, "unknown field %s in request body", f)
	}
	if strings.HasPrefix(msg, "invalid duration ") {
		// api.Duration's own error does not say where it was.
		if field := badDurationField(body); field != "" {
			return httpErrorf(http.StatusBadRequest, "%s for field %q: use a duration such as \"30s\"", msg, field)
		}
	}
	return httpErrorf(http.StatusBadRequest, "request body: %s", msg)
}

// jsonKind names the JSON type a Go type is read from.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.Kind().String()
}

// badDurationField finds which duration field of a container request does
// not parse, for the error message.
func badDurationField(body []byte) string {
	var probe struct {
		DrainTimeout json.RawMessage `json:"drain_timeout"`
		Health       *struct {
			Interval json.RawMessage `json:"interval"`
			Timeout  json.RawMessage `json:"timeout"`
		} `json:"health"`
		Restart *struct {
			Delay    json.RawMessage `json:"delay"`
			MaxDelay json.RawMessage `json:"max_delay"`
		} `json:"restart"`
	}
	if json.Unmarshal(body, &probe) != nil {
		return ""
	}
	type rawField struct {
		name string
		raw  json.RawMessage
	}
	fields := []rawField{{"drain_timeout", probe.DrainTimeout}}
	if h := probe.Health; h != nil {
		fields = append(fields, rawField{"health.interval", h.Interval}, rawField{"health.timeout", h.Timeout})
	}
	if rp := probe.Restart; rp != nil {
		fields = append(fields, rawField{"restart.delay", rp.Delay}, rawField{"restart.max_delay", rp.MaxDelay})
	}
	for _, f := range fields {
		if len(f.raw) == 0 {
			continue
		}
		var d api.Duration
		if d.UnmarshalJSON(f.raw) != nil {
			return f.name
		}
	}
	return ""
}

// Bodies. Each decodes, converts and validates fully, so that nothing bad
// is ever proposed to Raft.

// parseContainer reads the body of PUT /v1/containers/{id}.
func parseContainer(id string, body []byte) (state.ContainerSpec, error) {
	var req api.ContainerRequest
	if err := decodeJSON(body, &req); err != nil {
		return state.ContainerSpec{}, err
	}
	spec := state.SpecFromAPI(&req)
	if err := state.ValidateContainer(id, &spec); err != nil {
		return state.ContainerSpec{}, err
	}
	return spec, nil
}

// parseVersion reads the body of PUT /v1/services/{service}/versions/{version}.
func parseVersion(service, version string, body []byte) (*state.DeclareVersion, error) {
	var req api.VersionRequest
	if err := decodeJSON(body, &req); err != nil {
		return nil, err
	}
	cmd := &state.DeclareVersion{Service: service, Version: version, Clients: req.Clients, Description: req.Description}
	if err := state.ValidateDeclareVersion(cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// parseStatus reads the body of PUT /v1/containers/{id}/status, stamped at
// now.
func parseStatus(body []byte, now time.Time) (state.ContainerStatus, error) {
	var req api.ContainerStatus
	if err := decodeJSON(body, &req); err != nil {
		return state.ContainerStatus{}, err
	}
	st := state.StatusFromAPI(&req, now)
	if err := state.ValidateStatus(&st); err != nil {
		return state.ContainerStatus{}, err
	}
	return st, nil
}

// pathName reads and checks a name in the path.
func pathName(r *http.Request, key, field string) (string, error) {
	v := r.PathValue(key)
	if err := state.ValidateName(field, v); err != nil {
		return "", err
	}
	return v, nil
}

// pathVersion reads a version to declare from the path: it must be
// canonical.
func pathVersion(r *http.Request, key string) (string, error) {
	v := r.PathValue(key)
	if err := state.ValidateVersion(key, v); err != nil {
		return "", err
	}
	return v, nil
}

// pathStoredVersion reads a version that should already be stored from the
// path. A version declared before versions had to be canonical ("1.0") must
// still be retired and purged, so only its syntax is checked.
func pathStoredVersion(r *http.Request, key string) (string, error) {
	v := r.PathValue(key)
	if err := api.CheckVersionSyntax(v); err != nil {
		return "", badRequest(key, "%s", err.Error())
	}
	return v, nil
}

// describe names the endpoint of a request, for messages.
func describe(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return fmt.Sprintf("%s %s", r.Method, r.URL.Path)
}
