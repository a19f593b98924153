package node

import (
	"testing"
	"time"
)

// A new container is checked at once, then at a fixed fast poll for its
// first fastPollFor, then every startPoll until it passes: no backoff that
// finds a service listening at 20 ms only at 25 ms (issue 14).
func TestStartWaitChecksAtOnceThenFast(t *testing.T) {
	if got := startWait(0, 0); got != 0 {
		t.Fatalf("wait before the first check = %v; want none", got)
	}
	var at time.Duration // when each check runs, from the start
	for checks := 0; at < fastPollFor; checks++ {
		w := startWait(checks, at)
		if checks > 0 && w != fastPoll {
			t.Fatalf("wait before check %d at %v = %v; want %v", checks+1, at, w, fastPoll)
		}
		at += w
	}
	if fastPoll > 2*time.Millisecond {
		t.Fatalf("fastPoll = %v; want at most 2ms", fastPoll)
	}
	if got := startWait(100, fastPollFor+time.Millisecond); got != startPoll {
		t.Fatalf("wait after %v = %v; want startPoll (%v)", fastPollFor, got, startPoll)
	}
}
