package api

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"
)

// A Client that knows several registry servers sends each request to its
// current server and, when that server does not answer or answers that it
// cannot serve the request (502, 503, 504), tries the next one. See
// docs/design.md §6: an agent knows every registry server, so that losing
// one, or the leader, never marks its node down while a quorum lives.

// defaultAttemptTimeout bounds one attempt of a request that does not block,
// when the Client knows more than one server; a blocking query gets its wait
// on top. A request with a deadline shares it among its attempts.
const defaultAttemptTimeout = 10 * time.Second

// errNoAnswer is what an attempt that ran out of its time returns: the
// server may be hung or unreachable, and the request goes to the next one.
var errNoAnswer = errors.New("no answer from the registry server in time")

// ParseAddresses reads a list of registry URLs separated by commas, as
// COEXIST_ADDR and --registry take them ("http://10.0.0.1:7700,http://10.0.0.2:7700"),
// and returns each URL checked and without a trailing slash. An empty list
// means DefaultAddress.
func ParseAddresses(list string) ([]string, error) {
	us, err := parseAddresses(list)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out, nil
}

func parseAddresses(list string) ([]*url.URL, error) {
	var out []*url.URL
	seen := map[string]bool{}
	for _, a := range strings.Split(list, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		u, err := parseAddress(a)
		if err != nil {
			return nil, err
		}
		if !seen[u.String()] {
			seen[u.String()] = true
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		u, err := parseAddress(DefaultAddress)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// servers is the list of registry servers a Client knows: those it was
// given, then those it learned from GET /v1/status/peers. The list is
// replaced, never changed in place, so a snapshot of it can be read without
// the lock.
type servers struct {
	every time.Duration // how often to learn the peers; 0: never

	mu        sync.Mutex
	given     []*url.URL
	list      []*url.URL // given, then learned; never empty
	cur       int        // index in list of the server requests go to first
	refreshed time.Time  // when the last refresh of the list began
}

func newServers(given []*url.URL, every time.Duration) *servers {
	return &servers{given: given, list: given, every: every}
}

// snapshot returns the list and the index of the current server.
func (s *servers) snapshot() ([]*url.URL, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list, s.cur
}

// current returns the server requests go to first.
func (s *servers) current() *url.URL {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list[s.cur]
}

// all returns the URLs of every server known.
func (s *servers) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.list))
	for i, u := range s.list {
		out[i] = u.String()
	}
	return out
}

// moveOn makes the server after u the current one, when u is still the
// current one (requests failing together move it once).
func (s *servers) moveOn(u *url.URL) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.list[s.cur].String() == u.String() {
		s.cur = (s.cur + 1) % len(s.list)
	}
}

// refreshDue reports whether the list should be learned again now, and if
// so marks the refresh as begun.
func (s *servers) refreshDue(now time.Time) bool {
	if s.every <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.refreshed.IsZero() && now.Sub(s.refreshed) < s.every {
		return false
	}
	s.refreshed = now
	return true
}

// retrySoon lets the next request try a failed refresh again after a few
// seconds instead of a whole period.
func (s *servers) retrySoon(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refreshed = now.Add(min(5*time.Second, s.every) - s.every)
}

// learn replaces the learned servers with the HTTP addresses of peers. The
// given servers stay (they are how the Client finds the cluster again), and
// the current server stays current when it is still known.
func (s *servers) learn(peers []Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	list := make([]*url.URL, 0, len(s.given)+len(peers))
	for _, u := range s.given {
		seen[u.String()] = true
		list = append(list, u)
	}
	for _, p := range peers {
		if p.HTTPAddr == "" {
			continue
		}
		u, err := parseAddress(p.HTTPAddr)
		if err != nil || seen[u.String()] {
			continue
		}
		seen[u.String()] = true
		list = append(list, u)
	}
	cur := s.list[s.cur].String()
	s.list, s.cur = list, 0
	for i, u := range list {
		if u.String() == cur {
			s.cur = i
		}
	}
}

// refreshServers learns the registry's servers from GET /v1/status/peers.
func (c *Client) refreshServers() {
	ctx, cancel := context.WithTimeout(context.Background(), defaultAttemptTimeout)
	defer cancel()
	peers, _, err := c.Status().Peers(ctx, nil)
	if err != nil || len(peers) == 0 {
		c.servers.retrySoon(time.Now())
		return
	}
	c.servers.learn(peers)
}

// attemptTimeout is how long one attempt of r may take before the next
// server is tried, with left attempts after it; 0 means no bound of its own.
func (c *Client) attemptTimeout(ctx context.Context, r *request, left int) time.Duration {
	if r.params.Has("index") {
		// A blocking query answers within its wait and the server's
		// jitter (a sixteenth); a deadline the caller set is sized for
		// one such answer, so it is not shared.
		wait := defaultBlockingWait
		if w, err := time.ParseDuration(r.params.Get("wait")); err == nil && w > 0 {
			wait = w
		}
		return defaultAttemptTimeout + wait + wait/16
	}
	d := defaultAttemptTimeout
	if dl, ok := ctx.Deadline(); ok && left > 0 {
		// Leave the other servers half of what remains.
		d = min(d, time.Until(dl)/2)
	}
	return d
}

// defaultBlockingWait is the registry's wait for a blocking query that does
// not ask for one.
const defaultBlockingWait = 5 * time.Minute

// mayTryElsewhere reports whether r, whose attempt failed with err, may be
// sent to another server. A request that never reached a server always may.
// Reads, and PUT and DELETE without check-and-set, may also after an answer
// that the server could not serve it: the registry's writes are idempotent
// (docs/design.md §5), and a write the server proposed before it answered
// 503 is in the log before anything proposed after it. After no answer at
// all only a read or a heartbeat may: the server may hold the write
// unread (paused, or cut off) and apply it when it resumes, after writes
// acknowledged meanwhile, so that a second copy acknowledged elsewhere would
// be undone by the first; the caller gets the error, an unknown outcome,
// instead. A POST or a check-and-set write that may have been applied is
// not sent again: a second try could fail where the first succeeded.
func (r *request) mayTryElsewhere(err error) bool {
	if r.stream != nil {
		return false
	}
	if neverConnected(err) || r.lateCopyHarmless() {
		// A read or a heartbeat may go elsewhere after any failure: a copy
		// applied late does no harm (also after "server closed idle
		// connection", which a reused connection to a dead server gives).
		return true
	}
	if errors.Is(err, errNoAnswer) {
		return false
	}
	return r.idempotent() && IsRetryable(err)
}

// lateCopyHarmless reports whether a copy of r applied long after it was
// sent does no harm: a read, or a node's heartbeat (it renews a TTL).
func (r *request) lateCopyHarmless() bool {
	switch r.method {
	case "GET", "HEAD":
		return true
	case "PUT":
		return strings.HasPrefix(r.path, "/v1/nodes/") && strings.HasSuffix(r.path, "/heartbeat")
	}
	return false
}

// idempotent reports whether r may be sent again after it reached a server:
// a read, or a PUT or DELETE without check-and-set.
func (r *request) idempotent() bool {
	switch r.method {
	case "GET", "HEAD":
		return true
	case "PUT", "DELETE":
		return !r.params.Has("cas")
	}
	return false
}

// neverConnected reports whether err is a failure to connect: the request
// never reached a server.
func neverConnected(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
