package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
)

// StatusError is the error for any answer of the registry outside 2xx.
type StatusError struct {
	// Code is the HTTP status code.
	Code int
	// Body is the "error" message of the JSON answer, or the raw body when it
	// was not JSON.
	Body string
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("unexpected response code %d", e.Code)
	}
	return fmt.Sprintf("unexpected response code %d: %s", e.Code, e.Body)
}

// statusCode reports the code of the StatusError inside err, or 0.
func statusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// IsNotFound reports whether err is a 404 answer of the registry.
func IsNotFound(err error) bool { return statusCode(err) == http.StatusNotFound }

// IsConflict reports whether err is a 409 answer of the registry: a
// check-and-set write that found the record changed, or a different body for
// an existing id.
func IsConflict(err error) bool { return statusCode(err) == http.StatusConflict }

// IsUnauthorized reports whether err is a 401 or 403 answer of the registry.
func IsUnauthorized(err error) bool {
	c := statusCode(err)
	return c == http.StatusUnauthorized || c == http.StatusForbidden
}

// IsRetryable reports whether the same request may succeed if sent again
// later: the registry had no leader or a proxy could not reach it (502, 503,
// 504), or the connection failed or was cut, or a server of several gave
// no answer in time. A cancelled or expired context
// is never retryable, and neither is a TLS verification failure.
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errNoAnswer) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		switch se.Code {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return true
	}
	return errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
