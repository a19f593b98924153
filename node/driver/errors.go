package driver

import "errors"

// Sentinel errors; compare with errors.Is, since they are usually wrapped.
var (
	// ErrNotFound: the driver knows no container with this id.
	ErrNotFound = errors.New("container not found")
	// ErrRunning: the container is running (a Start of the same id, a Remove).
	ErrRunning = errors.New("container is running")
	// ErrNotRunning: the process of a handle is gone, or its pid now belongs
	// to another process (Recover).
	ErrNotRunning = errors.New("container process is not running")
	// ErrInvalidSpec: the spec cannot be run; the message names the field.
	ErrInvalidSpec = errors.New("invalid container spec")
	// ErrNoPort: every port of the driver's range is taken.
	ErrNoPort = errors.New("no free port in range")
	// ErrExitUnknown: the process was not the driver's child (it was
	// re-adopted), so its exit status cannot be known.
	ErrExitUnknown = errors.New("exit status unknown: process was re-adopted, not a child of this agent")
	// ErrClosed: the driver was closed.
	ErrClosed = errors.New("driver closed")
)
