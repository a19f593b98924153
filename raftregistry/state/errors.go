package state

import (
	"errors"
	"fmt"
)

// Sentinel errors of the state store. The HTTP layer picks its status code
// from these with errors.Is.
var (
	// ErrNotFound means the record named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a check-and-set write found the record changed, a
	// different body was written to an existing record without one, or the
	// record is in no state to be removed (a version not yet retired, or one
	// a container holds, cannot be purged).
	ErrConflict = errors.New("conflict")
	// ErrInvalid means the input is not acceptable; see FieldError.
	ErrInvalid = errors.New("invalid input")
	// ErrPermission means the caller may not change this record.
	ErrPermission = errors.New("permission denied")
)

// FieldError names the field of the input that is wrong and why. It matches
// ErrInvalid with errors.Is.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrNotFound)
}

func conflict(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrConflict)
}
