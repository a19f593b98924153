// Package callpolicy is the SDK's call policy (docs/design.md §3, §7): which
// container an attempt of a call goes to, whether a failed attempt may be
// sent again, and the pause before it.
//
// It is a pure core: it reads no clock and starts no goroutine (the time and
// the deadline are passed in, the random source is injected), so that the
// SDK, `coexist load` and the simulator all run this same code. It imports
// only api, routing and the standard library.
package callpolicy

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

// The pauses between two attempts of a call: doubling from MinBackoff up to
// MaxBackoff, each with jitter (Backoff).
const (
	MinBackoff = 5 * time.Millisecond
	MaxBackoff = 250 * time.Millisecond
)

// Outcome is what an attempt of a call came to, as far as retrying it is
// concerned.
type Outcome uint8

const (
	// Answered: a service answered, whatever the status, or the gateway
	// refused the call without saying it is safe to send again.
	Answered Outcome = iota
	// NeverConnected: no connection to the gateway was made, so no byte of
	// the call was sent.
	NeverConnected
	// RefusedSafe: the gateway refused the call before any service saw it
	// (503 with Coexist-Retry: safe).
	RefusedSafe
	// Broken: the connection failed after it was made; the call may have
	// reached a service.
	Broken
)

var outcomeNames = [...]string{Answered: "answered", NeverConnected: "never connected", RefusedSafe: "refused as safe to retry", Broken: "broken"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// Retryable reports whether an attempt that came to o may be sent again:
// only when it never reached a service, since a call that did may not be
// idempotent.
func Retryable(o Outcome) bool { return o == NeverConnected || o == RefusedSafe }

// Classify tells what an attempt came to from the answer of an
// http.RoundTripper: resp when err is nil.
func Classify(resp *http.Response, err error) Outcome {
	switch {
	case err != nil && NeverConnectedError(err):
		return NeverConnected
	case err != nil:
		return Broken
	case RefusedSafely(resp.StatusCode, resp.Header):
		return RefusedSafe
	default:
		return Answered
	}
}

// RefusedSafely reports whether an answer is a gateway's refusal of a call
// that reached no service: 503 with Coexist-Retry: safe. The header on any
// other status does not count.
func RefusedSafely(status int, h http.Header) bool {
	if status != http.StatusServiceUnavailable {
		return false
	}
	v := h[api.HeaderRetry]
	return len(v) > 0 && v[0] == api.RetrySafe
}

// NeverConnectedError reports whether err says that no connection was made:
// a failed dial, so that no byte of the call was sent. A reset or an EOF
// after the connection was made does not count, whatever its errno.
func NeverConnectedError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// SharedRand draws from math/rand/v2's top-level functions, which are safe
// for concurrent use and allocate nothing: the source to inject where no
// seeded one is wanted. The policy draws only from the source it is handed.
type SharedRand struct{}

// IntN is rand.IntN.
func (SharedRand) IntN(n int) int { return rand.IntN(n) }

// Backoff draws the pauses between the attempts of one call. The zero value
// is ready: its first pause is about MinBackoff.
type Backoff struct{ step time.Duration }

// Next returns the next pause: half the current step plus a random part of
// the other half; then the step doubles, up to MaxBackoff.
func (b *Backoff) Next(r routing.Rand) time.Duration {
	if b.step <= 0 {
		b.step = MinBackoff
	}
	half := b.step / 2
	pause := half + time.Duration(r.IntN(int(half)+1))
	b.step = min(2*b.step, MaxBackoff)
	return pause
}

// Call is the policy's state of one call across its attempts, small enough
// to live on the stack of a RoundTrip. The zero value is a call not yet
// tried.
type Call struct {
	avoid   Avoid
	backoff Backoff
	last    string // the container of the last Pick
}

// Pick chooses the container of the next attempt from a route: the route's
// primary or, when that one refused this call already, the next in order of
// preference that did not; when every one did, the one that refused longest
// ago.
func (c *Call) Pick(r *routing.Route) routing.Target {
	tgt := pick(r, &c.avoid)
	c.last = tgt.ID
	return tgt
}

// Retry decides, after an attempt that came to o, whether to send the call
// again and after what pause: only when o is Retryable, the request can be
// sent again (its body replayed), and the pause ends before the deadline
// (now and deadline are the caller's clock). When it says yes, the container
// of the last Pick is avoided from then on.
func (c *Call) Retry(o Outcome, replayable bool, now, deadline time.Time, r routing.Rand) (time.Duration, bool) {
	return c.RetryWith(Retryable, o, replayable, now, deadline, r)
}

// RetryWith is Retry with another rule of what may be retried: the
// simulator plants a wrong one to show that it catches it.
func (c *Call) RetryWith(retryable func(Outcome) bool, o Outcome, replayable bool, now, deadline time.Time, r routing.Rand) (time.Duration, bool) {
	if !retryable(o) || !replayable {
		return 0, false
	}
	pause := c.backoff.Next(r)
	if !now.Add(pause).Before(deadline) {
		return pause, false
	}
	if c.last != "" {
		c.avoid.Add(c.last)
	}
	return pause, true
}

func pick(r *routing.Route, avoid *Avoid) routing.Target {
	tgt := r.Primary()
	if avoid.n == 0 {
		return tgt
	}
	oldest, ok := avoid.when(tgt.ID)
	if !ok {
		return tgt
	}
	for i := 1; i < r.Len(); i++ {
		t := r.At(i)
		seq, ok := avoid.when(t.ID)
		if !ok {
			return t
		}
		if seq < oldest {
			tgt, oldest = t, seq
		}
	}
	return tgt
}

// Avoid holds the last few containers that refused a call, with the order of
// their refusals; it forgets the oldest when full.
type Avoid struct {
	ids [4]string
	seq [4]uint32
	n   int
	at  uint32
}

// Len is the number of containers held.
func (s *Avoid) Len() int { return s.n }

// Has reports whether id is avoided.
func (s *Avoid) Has(id string) bool {
	_, ok := s.when(id)
	return ok
}

// when reports whether id refused the call, and when.
func (s *Avoid) when(id string) (uint32, bool) {
	for i := 0; i < s.n; i++ {
		if s.ids[i] == id {
			return s.seq[i], true
		}
	}
	return 0, false
}

// Add records a refusal by id, forgetting the oldest when full.
func (s *Avoid) Add(id string) {
	s.at++
	slot := -1
	for i := 0; i < s.n; i++ {
		if s.ids[i] == id {
			slot = i
		}
	}
	switch {
	case slot >= 0:
	case s.n < len(s.ids):
		slot = s.n
		s.n++
	default:
		slot = 0
		for i := 1; i < s.n; i++ {
			if s.seq[i] < s.seq[slot] {
				slot = i
			}
		}
	}
	s.ids[slot], s.seq[slot] = id, s.at
}
