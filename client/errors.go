package client

import (
	"errors"

	"github.com/coexist-dev/coexist/routing"
)

var (
	// ErrNoCompatibleVersion means no version of the called service serves
	// this client; the error is a *routing.NoCompatibleError that names the
	// client, the service and the versions that exist. It is
	// routing.ErrNoCompatibleVersion, so errors.Is works with either.
	ErrNoCompatibleVersion = routing.ErrNoCompatibleVersion

	// ErrUnknownService means the route table holds no service of that name.
	// It is routing.ErrUnknownService.
	ErrUnknownService = routing.ErrUnknownService

	// ErrClosed means the Client was closed.
	ErrClosed = errors.New("client closed")

	// ErrNoTable means New gave up before the first route table loaded.
	ErrNoTable = errors.New("no route table loaded")
)
