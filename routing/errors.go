package routing

import (
	"errors"
	"strconv"
	"strings"

	"github.com/coexist-dev/coexist/api"
)

var (
	// ErrNoCompatibleVersion means no version of the service is a candidate
	// for the client (docs/design.md §4). The error returned is a
	// *NoCompatibleError that says why.
	ErrNoCompatibleVersion = errors.New("no compatible version")

	// ErrUnknownService means the table holds no service of that name.
	ErrUnknownService = errors.New("unknown service")

	// ErrStaleContainer means a call named a container that is not, or is no
	// longer, the right choice; the gateway refuses it as safe to retry.
	ErrStaleContainer = errors.New("container is not the right choice")

	errEmptyRange = errors.New("empty range")
)

// NoCompatibleError is the error of Select when no version of the service is
// a candidate for the client. errors.Is(err, ErrNoCompatibleVersion) holds.
type NoCompatibleError struct {
	Service       string
	Client        string // the client's name; may be empty
	ClientVersion string // as the client wrote it; empty when it has none
	// Requirement is the client's own range for the service, if it has one.
	Requirement string
	// Versions lists every declared version of the service, lowest first.
	// The message names only those not retired, and counts the others.
	Versions []Candidate
}

func (e *NoCompatibleError) Error() string {
	var b strings.Builder
	b.WriteString("no compatible version of service ")
	b.WriteString(strconv.Quote(e.Service))
	b.WriteString(" for client ")
	b.WriteString(clientLabel(e.Client, e.ClientVersion))
	if e.Requirement != "" {
		b.WriteString(" requiring ")
		b.WriteString(strconv.Quote(e.Requirement))
	}
	b.WriteString(": ")
	if len(e.Versions) == 0 {
		b.WriteString("no versions declared")
		return b.String()
	}
	// Retired versions serve nobody: the message counts them, and names
	// the versions that could serve (a service's history may be long).
	retired, listed := 0, 0
	for _, v := range e.Versions {
		if v.State == api.VersionRetired {
			retired++
			continue
		}
		if listed > 0 {
			b.WriteString(", ")
		}
		listed++
		b.WriteString(v.Version)
		b.WriteString(" (")
		b.WriteString(v.State)
		b.WriteString(", clients ")
		b.WriteString(strconv.Quote(v.Clients))
		// A version whose range admits the client was left out for a reason
		// the range does not show: say which.
		if v.AdmitsClient {
			switch {
			case !v.MeetsRequirement:
				b.WriteString(", excluded by requirement")
			case v.Running == 0:
				b.WriteString(", no running container")
			}
		} else if v.ClientsErr != "" {
			b.WriteString(", invalid range")
		}
		b.WriteString(")")
	}
	if listed == 0 {
		b.WriteString("no active or draining version")
	}
	if retired > 0 {
		b.WriteString(" (+")
		b.WriteString(strconv.Itoa(retired))
		b.WriteString(" retired)")
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrNoCompatibleVersion) hold.
func (e *NoCompatibleError) Unwrap() error { return ErrNoCompatibleVersion }

// clientLabel renders a client as name@version, the way the CLI and logs show
// it.
func clientLabel(name, ver string) string {
	switch {
	case ver == "":
		ver = "(no version)"
		if name == "" {
			return ver
		}
		return name + " " + ver
	case name == "":
		return ver
	}
	return name + "@" + ver
}
