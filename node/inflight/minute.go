package inflight

import "time"

// Minute turns a container's calls served (Counts.Served, a count that only
// grows) into calls in the last minute per "service@version", for display
// (docs/design.md §6). It reads no clock: the caller passes the time of each
// observation. The zero value is ready; it is not safe for concurrent use.
type Minute struct {
	samples []servedSample // oldest first
}

type servedSample struct {
	at     time.Time
	served map[string]int64
}

// Window is the span Minute counts calls over.
const Window = time.Minute

// Observe records served at now and returns the calls in the minute up to
// now by key, leaving out keys with none: served less the count of the
// newest observation at least a minute old, or, while the observations
// span less than a minute, of the oldest one (the calls seen so far). The
// first observation returns nothing. Observations must come in time order;
// one within step of the last one kept is used but not kept, so an agent
// planning often keeps at most a minute's worth of seconds.
func (m *Minute) Observe(now time.Time, served map[string]int64) map[string]int {
	if n := len(m.samples); n == 0 || now.Sub(m.samples[n-1].at) >= step {
		m.samples = append(m.samples, servedSample{at: now, served: served})
	}
	base := 0
	for i := range m.samples {
		if now.Sub(m.samples[i].at) < Window {
			break
		}
		base = i
	}
	m.samples = m.samples[base:]
	out := map[string]int{}
	from := m.samples[0].served
	for k, n := range served {
		if d := n - from[k]; d > 0 {
			out[k] = int(d)
		}
	}
	return out
}

// step is the least time between two observations Minute keeps.
const step = time.Second
