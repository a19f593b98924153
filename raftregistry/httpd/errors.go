package httpd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// errNotLeader is the Store's sentinel for "ask the leader".
var errNotLeader = raftregistry.ErrNotLeader

// httpError is an error of the HTTP layer itself (a bad query parameter, a
// missing token) with the status it answers.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func httpErrorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// badRequest is a 400 naming the field and the reason, the way the state
// store's validation does.
func badRequest(field, format string, args ...any) error {
	return &state.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// statusOf is the one place that decides the HTTP status of an error, and the
// message the caller sees.
func statusOf(err error) (int, string) {
	var he *httpError
	var fe *state.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %s", byteSize(mbe.Limit))
	case errors.As(err, &fe):
		return http.StatusBadRequest, fe.Error()
	case errors.Is(err, state.ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, state.ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, state.ErrConflict):
		return http.StatusConflict, err.Error()
	case errors.Is(err, state.ErrPermission):
		return http.StatusForbidden, err.Error()
	case errors.Is(err, raftregistry.ErrNoLeader),
		errors.Is(err, raftregistry.ErrNotLeader),
		errors.Is(err, raftregistry.ErrTimeout),
		errors.Is(err, raftregistry.ErrLeadershipLost),
		errors.Is(err, raftregistry.ErrShutdown):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, err.Error()
	case errors.Is(err, context.Canceled):
		return http.StatusServiceUnavailable, err.Error()
	}
	return http.StatusInternalServerError, err.Error()
}

// writeError answers err as {"error": "..."} with the status statusOf picks.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := statusOf(err)
	switch {
	case errors.Is(err, context.Canceled):
	case code == http.StatusServiceUnavailable:
		// No leader, or not the leader: expected during elections, and
		// clients retry; at WARN one election floods the log.
		s.logger.Debug("request refused", "method", r.Method, "path", r.URL.Path, "code", code, "error", err)
	case code >= 500:
		s.logger.Warn("request failed", "method", r.Method, "path", r.URL.Path, "code", code, "error", err)
	}
	writeJSON(w, code, api.ErrorResponse{Error: msg})
}

// writeJSON answers v as JSON with code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	// Version ranges are full of '<' and '>': keep them readable.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func byteSize(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
