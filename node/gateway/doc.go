// Package gateway is a node's HTTP entry point (docs/design.md §4, §6):
// every call to a service on the node enters through it. It parses the
// caller, takes the decision of package admit (the pure core the simulator
// takes too), counts the calls to local containers in package inflight, and
// forwards them: by its own HTTP/1.1 engine (Serve) or by net/http and
// httputil.ReverseProxy (ServeHTTP). See DESIGN.md in this directory.
package gateway
