// Package client is the service-calling SDK of coexist (docs/design.md §7): it
// watches the registry, keeps a route table in memory, and routes every call
// a process makes to a service version compatible with the process's own
// version, through the gateway of a node that holds the chosen container.
//
//	c, err := client.New(ctx, client.Config{Name: "web", Version: "1.3.0"})
//	...
//	defer c.Close()
//	resp, err := c.HTTPClient().Get("http://greeter/hello")
//
// A request to http://{service}/path reaches the container as
// /{service}/path, the path every container receives (docs/design.md §6); the
// SDK names the service in the path rather than leaving the gateway to
// guess it from Host, so that a path whose first segment happens to be
// another service's name still reaches this one. Besides Coexist-Client,
// Coexist-Client-Version and Coexist-Container, a client with a requirement
// on the service sends it as Coexist-Client-Require, so that a gateway can
// re-check the named container with the client's whole identity.
//
// The route table is an immutable routing.Table behind an atomic pointer,
// swapped whole on every registry change; choosing a route is an atomic load
// and routing.Select, which takes no lock and allocates nothing. The watches
// read with ?stale, so that any registry server can answer, but an answer
// from a server that knows no leader is not believed: a restarted server
// answers from an empty state until its election. When the registry cannot
// be reached the client keeps routing from its last table and says how old
// it is (Client.Staleness), logging when that age crosses a threshold.
//
// The package speaks to the registry only through api and decides nothing
// about compatibility itself: routing does. It must not import raftregistry,
// node or anything under cmd.
package client
