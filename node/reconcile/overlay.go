package reconcile

import "github.com/coexist-dev/coexist/api"

// Overlay is the status a node's gateway routes by for one of its own
// containers (docs/design.md §4): the agent's own observation, not the
// registry's report of it. A container the agent has seen pass its health
// check is usable before the registry says running; one it has seen exit,
// fail or start draining is not, whatever the registry says. A container
// the agent holds no local record of (not started here, or not yet
// re-adopted) is not usable: nil.
//
// Letting the local view promote is safe because the gateway admits every
// usable, compatible, active container a caller names (routing.Admit): a
// gateway that sees a new version before its callers do still serves the
// version they see. The agent and the simulator both build their gateway
// tables with this function.
func Overlay(c *api.Container, l *Local, versions map[string]string) *api.ContainerStatus {
	if l == nil {
		return nil
	}
	st := Status(c, l, versions)
	return &st
}
