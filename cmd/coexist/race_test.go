//go:build race

package main

// raceEnabled: the race detector slows the agent (this test binary) and its
// gateway several times over, so rate goals are only logged.
const raceEnabled = true
