package api

import (
	"errors"
	"fmt"
	"strings"
)

// RetrySafe is the value of Coexist-Retry on a gateway's refusal of a call
// that reached no service: the caller may send it again, elsewhere.
const RetrySafe = "safe"

// ServedBy is the value of Coexist-Served-By, which a gateway sets on every
// answer a service gave: "service@version container-id".
type ServedBy struct {
	Service   string
	Version   string
	Container string
}

// String is the header's value.
func (s ServedBy) String() string {
	return s.Service + "@" + s.Version + " " + s.Container
}

// Ref is "service@version".
func (s ServedBy) Ref() string { return s.Service + "@" + s.Version }

var errServedBy = errors.New(`want "service@version container-id"`)

// ParseServedBy reads a Coexist-Served-By value. It checks the shape only,
// not the names, and allocates nothing on a good value: the SDK parses one
// on every call.
func ParseServedBy(v string) (ServedBy, error) {
	ref, container, ok := strings.Cut(v, " ")
	if !ok || container == "" || strings.IndexByte(container, ' ') >= 0 {
		return ServedBy{}, fmt.Errorf("%s %q: %w", HeaderServedBy, v, errServedBy)
	}
	service, version, ok := strings.Cut(ref, "@")
	if !ok || service == "" || version == "" || strings.IndexByte(version, '@') >= 0 {
		return ServedBy{}, fmt.Errorf("%s %q: %w", HeaderServedBy, v, errServedBy)
	}
	return ServedBy{Service: service, Version: version, Container: container}, nil
}
