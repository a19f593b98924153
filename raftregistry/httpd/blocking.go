package httpd

import (
	"math/rand/v2"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
)

// Blocking query waits.
const (
	defaultWait = 5 * time.Minute
	maxWait     = 10 * time.Minute
)

// waitFor is how long a blocking query with ?wait=asked may wait: the default
// when not asked, at most maxWait, plus up to a sixteenth of random jitter so
// that watchers started together do not all come back together.
func waitFor(asked time.Duration) time.Duration {
	d := asked
	if d <= 0 {
		d = defaultWait
	}
	d = min(d, maxWait)
	if j := int64(d / 16); j > 0 {
		d += time.Duration(rand.Int64N(j))
	}
	return d
}

// readFunc reads the records of one query: the index of the tables read,
// the answer, and the channels closed when those tables next change. An
// error (such as not found) is answered like a result: a blocking query on
// a missing record waits for it to appear.
type readFunc func(st *state.Store) (idx uint64, ws state.WatchSet, v any, err error)

// blocking answers a read, as a blocking query when ?index is set: it
// returns when the index of the tables read passes ?index, or when the wait
// ends (with the unchanged answer), or when the index goes backwards (the
// state was restored from a snapshot).
func (s *Server) blocking(w http.ResponseWriter, r *http.Request, c *call, read readFunc) error {
	return s.blockingWith(w, r, c, read, nil, nil)
}

// blockingWith is blocking with an optional cache of encoded answers: cached
// gives the tables' index, their watch set and the answer encoded for that
// index, if known; encode encodes (and keeps) a fresh answer.
func (s *Server) blockingWith(w http.ResponseWriter, r *http.Request, c *call, read readFunc,
	cached func(*state.Store) (uint64, state.WatchSet, []byte, bool), encode func(uint64, any) []byte) error {
	var (
		timer   *time.Timer
		expired bool
		first   uint64
	)
	for {
		st := s.store.State()
		var (
			idx  uint64
			ws   state.WatchSet
			v    any
			err  error
			body []byte
			hit  bool
		)
		if cached != nil {
			idx, ws, body, hit = cached(st)
		}
		if !hit {
			idx, ws, v, err = read(st)
		}
		if first == 0 {
			first = idx
		}
		if c.q.index == 0 || idx > c.q.index || idx < first || expired {
			s.setReadHeaders(w, idx)
			if err != nil {
				return err
			}
			if !hit && encode != nil {
				body = encode(idx, v)
			}
			if body != nil {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusOK)
				_, _ = w.Write(body)
				return nil
			}
			writeJSON(w, http.StatusOK, v)
			return nil
		}
		if timer == nil {
			timer = time.NewTimer(waitFor(c.q.wait))
			defer timer.Stop()
		}
		if s.waitHook != nil {
			s.waitHook()
		}
		switch waitAny(r, ws, timer.C) {
		case waitDone:
			return r.Context().Err()
		case waitTimeout:
			expired = true
		}
	}
}

type waitResult uint8

const (
	waitChanged waitResult = iota
	waitTimeout
	waitDone
)

// waitAny waits until a channel of ws is closed, the timer fires, or the
// request is cancelled.
func waitAny(r *http.Request, ws state.WatchSet, timer <-chan time.Time) waitResult {
	cases := make([]reflect.SelectCase, 0, len(ws)+2)
	cases = append(cases,
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(r.Context().Done())},
		reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer)})
	for _, ch := range ws {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	switch chosen, _, _ := reflect.Select(cases); chosen {
	case 0:
		return waitDone
	case 1:
		return waitTimeout
	}
	return waitChanged
}

// setReadHeaders says how fresh a read is.
func (s *Server) setReadHeaders(w http.ResponseWriter, idx uint64) {
	h := w.Header()
	h.Set(api.HeaderIndex, strconv.FormatUint(idx, 10))
	s.setLeaderHeaders(w)
}

func (s *Server) setLeaderHeaders(w http.ResponseWriter) {
	_, known := s.store.Leader()
	h := w.Header()
	h.Set(api.HeaderKnownLeader, strconv.FormatBool(known))
	h.Set(api.HeaderLastContact, strconv.FormatInt(s.store.LastContact().Milliseconds(), 10))
}
