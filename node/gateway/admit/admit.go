// Package admit is the gateway's decision on a call, as a pure function
// (docs/design.md §3, §4): routing.Admit's admission, the hop limit, and the
// answer a refused call gets (its status, whether it is safe to retry, the
// reason it is counted by). Both of the gateway's serving paths take it, and
// the simulator takes the same function; it reads no clock, starts no
// goroutine and does no I/O.
package admit

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/routing"
)

// Reasons of a refusal: the reason label of coexist_gateway_refused_total.
const (
	ReasonRetry          = "retry"
	ReasonNoCompatible   = "no_compatible"
	ReasonUnknownService = "unknown_service"
	ReasonBadRequest     = "bad_request"
	ReasonHopLimit       = "hop_limit"
	ReasonUnreachable    = "upstream_unreachable"
	ReasonStarting       = "starting"
)

// Call is what the gateway knows of a call when it decides, besides its
// table.
type Call struct {
	// Client is the caller, parsed from Coexist-Client,
	// Coexist-Client-Version and Coexist-Client-Require, on Node.
	Client routing.Client
	// Service is the service the call names, one of the table's or not.
	Service string
	// Container is the container the caller chose (Coexist-Container); ""
	// when it named none.
	Container string
	// Hops is the value of Coexist-Hops as received: "" or "0" for a call
	// no gateway has forwarded yet.
	Hops string
	// Node is the id of this gateway's node.
	Node string
}

// Forwarded tells whether a call carrying Coexist-Hops: hops was already
// forwarded by a gateway, and so must not be forwarded again.
func Forwarded(hops string) bool { return hops != "" && hops != "0" }

// Verdict is the gateway's decision on a call: a route to serve it by, or a
// refusal.
type Verdict struct {
	// Decision is routing.Admit's decision the verdict follows from.
	Decision routing.Decision
	// Route is the route of an admitted call; its primary is the container
	// that serves it.
	Route routing.Route
	// Remote: the primary is on another node; the call goes, once, to the
	// gateway of that node, naming the container, with Coexist-Hops: 1.
	Remote bool
	// Refusal is why the call is refused; nil when it is admitted.
	Refusal *Refusal
}

// Refusal is an answer of the gateway's own, to a call that reaches no
// service.
type Refusal struct {
	// Code is the HTTP status answered.
	Code int
	// Service is the metrics label: "" unless a service of the table, so
	// that a caller's own words never become a label.
	Service string
	// Reason is the reason label (the Reason* constants).
	Reason string
	// Retry: the answer carries Coexist-Retry: safe (the call reached no
	// service, so any caller may send it again).
	Retry bool
	// Err says why, for the answer's body.
	Err error
}

// Decide is the gateway's decision on call c under table t
// (docs/design.md §4): routing.Admit admits it or not, and Judge says what
// the gateway does with that. rnd draws the power-of-two choice of a call
// that names no container.
func Decide(t *routing.Table, c Call, rnd routing.Rand) Verdict {
	return c.Judge(routing.Admit(t, c.Client, c.Service, c.Container, rnd))
}

// Judge turns routing.Admit's decision on c into the gateway's verdict.
// Decide is Judge of routing.Admit; the simulator calls Judge itself only
// to judge an admission a test planted in place of routing.Admit.
//
//   - DecisionForward: admitted. A primary on another node is forwarded to
//     its gateway, unless c was already forwarded once: then it is refused
//     as safe to retry (the hop limit), for its caller to choose again.
//   - DecisionUnknownService: 404.
//   - DecisionNoCompatible: 404 for a call that named no container; for one
//     that named a container, the caller's table had a candidate where this
//     one has none, so a fresh choice may find one: 503, safe to retry.
//   - DecisionRefuseRetry, and any decision added later: 503, safe to retry.
func (c Call) Judge(d routing.Decision, r routing.Route, err error) Verdict {
	v := c.judge(d, r, err)
	v.Decision = d
	return v
}

func (c Call) judge(d routing.Decision, r routing.Route, err error) Verdict {
	switch d {
	case routing.DecisionForward:
	case routing.DecisionUnknownService:
		// The name comes from the caller: keep it out of the labels.
		return refused(http.StatusNotFound, "", ReasonUnknownService, false, err)
	case routing.DecisionNoCompatible:
		if c.Container != "" {
			return refused(http.StatusServiceUnavailable, c.Service, ReasonRetry, true,
				fmt.Errorf("%w: container %q: %w", routing.ErrStaleContainer, c.Container, err))
		}
		return refused(http.StatusNotFound, c.Service, ReasonNoCompatible, false, err)
	default:
		return refused(http.StatusServiceUnavailable, c.Service, ReasonRetry, true, err)
	}
	if r.Len() == 0 {
		return refused(http.StatusServiceUnavailable, c.Service, ReasonRetry, true,
			fmt.Errorf("%w: the admission of %s chose no container", routing.ErrStaleContainer, c.Service))
	}
	tgt := r.Primary()
	if tgt.Node == c.Node {
		return Verdict{Route: r}
	}
	if Forwarded(c.Hops) {
		return refused(http.StatusServiceUnavailable, c.Service, ReasonHopLimit, true,
			fmt.Errorf("call already forwarded by a gateway (%s: %s); container %q of %s@%s is on node %q, not %q",
				api.HeaderHops, c.Hops, tgt.ID, r.Service, r.Version, tgt.Node, c.Node))
	}
	return Verdict{Route: r, Remote: true}
}

// NotReady is the refusal of every call while the gateway has no routing
// table yet: safe to retry.
func NotReady() *Refusal {
	return &Refusal{Code: http.StatusServiceUnavailable, Reason: ReasonStarting, Retry: true,
		Err: errStarting}
}

var errStarting = errors.New("gateway is starting: no routing table yet")

func refused(code int, service, reason string, retry bool, err error) Verdict {
	return Verdict{Refusal: &Refusal{Code: code, Service: service, Reason: reason, Retry: retry, Err: err}}
}
