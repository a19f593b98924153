// Package inflight counts the calls in flight on a node, per container and
// per service version. The gateway counts every call it forwards to a local
// container; the agent reads the counts to end a drain and to report them;
// the simulator counts its calls with the same code.
package inflight
