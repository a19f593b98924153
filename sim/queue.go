package sim

// evKind says what an event does.
type evKind uint8

const (
	evStep         evKind = iota + 1 // a: step index
	evCommit                         // the registry commits the head of its log
	evPublish                        // the registry publishes its committed state to watchers
	evLeaderTick                     // the leader's duties; gen: tick generation
	evLeaderBack                     // a leader-loss window ends
	evDeliver                        // a: node; a view reached the node's agent
	evReconcile                      // a: node; gen: node generation
	evHealthy                        // a: container; gen: process generation
	evExited                         // a: container; gen: process generation
	evHeartbeat                      // a: node; gen: node generation
	evBeatArrive                     // a: node
	evReportArrive                   // a: container; b: node; the agent's report reached the registry
	evReportAck                      // a: container; b: node generation; the answer reached the agent
	evReportFail                     // a: container; b: node generation
	evCohortTick                     // a: cohort; gen: cohort generation
	evAttempt                        // call: a client (re)tries
	evArrive                         // call: reaches the gateway of its target
	evDone                           // call: the container finished its own work
	evReply                          // call: the answer reached the caller
	evProbe                          // convergence probe
	evEnd                            // end of the run
	evCrash                          // a: container; gen: process generation; its process crashes on its own
	evCensus                         // look again at the range changes waiting to be in force
	numEvKinds
)

var evNames = [numEvKinds]string{"", "step", "commit", "publish", "leader-tick", "leader-back", "deliver",
	"reconcile", "healthy", "exited", "heartbeat", "beat-arrive", "report-arrive", "report-ack", "report-fail",
	"cohort-tick", "attempt", "arrive", "done", "reply", "probe", "end", "crash", "census"}

func (k evKind) String() string {
	if k < numEvKinds {
		return evNames[k]
	}
	return "unknown"
}

// event is one entry of the queue. Events are pooled: the loop recycles an
// event once it has run, so nothing may keep a pointer to one.
type event struct {
	at   int64
	seq  uint64
	kind evKind
	a, b int32
	gen  uint32
	call *call
}

// queue is a binary min-heap of events ordered by (at, seq), with a free
// list so that the steady state allocates no events. The heap holds each
// event's key beside its pointer, so that ordering reads no event.
type queue struct {
	h    []slot
	free []*event
	seq  uint64
}

type slot struct {
	at  int64
	seq uint64
	e   *event
}

func (q *queue) less(i, j int) bool {
	a, b := &q.h[i], &q.h[j]
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// alloc returns a cleared event.
func (q *queue) alloc() *event {
	if n := len(q.free); n > 0 {
		e := q.free[n-1]
		q.free = q.free[:n-1]
		return e
	}
	return new(event)
}

func (q *queue) release(e *event) {
	*e = event{}
	q.free = append(q.free, e)
}

func (q *queue) push(e *event) {
	q.seq++
	e.seq = q.seq
	q.h = append(q.h, slot{e.at, e.seq, e})
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *queue) pop() *event {
	h := q.h
	n := len(h) - 1
	top := h[0].e
	h[0] = h[n]
	h[n] = slot{}
	q.h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}

func (q *queue) len() int { return len(q.h) }
