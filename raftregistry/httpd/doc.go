// Package httpd is the registry's v1 HTTP API over the replicated store:
// routing of the endpoints of docs/design.md §5, bearer-token authentication and
// role checks, decoding and full validation of request bodies before
// anything is proposed to Raft, blocking queries over the state store's
// watch sets, forwarding to the leader, and the API's Prometheus metrics.
//
// It consumes the store through the small Store interface declared here,
// which raftregistry.Store satisfies; tests use a fake of it over a real
// state.Store. It imports raftregistry only for its sentinel errors, and
// routing for GET /v1/route. It must not import the node agent, the client
// SDK, the provider or the simulator, and it owns no listener: cmd/coexist
// serves a *Server.
//
// Where a request is answered:
//
//   - writes, and reads without ?stale, by the leader: a follower forwards
//     them (X-Coexist-Forwarded: 1), and a forwarded request that reaches a
//     server that is not the leader is answered 503, never forwarded again;
//   - ?stale reads by whichever server they reach, saying how stale it may be
//     (X-Coexist-Known-Leader, X-Coexist-Last-Contact);
//   - GET /v1/status/leader, GET /v1/status/peers (no token) and GET
//     /v1/metrics (this server's own) locally.
//
// A follower forwards before it resolves the caller's token: the leader's
// token table is the newest, so a token created a moment ago works on every
// server. The HTTP status of every error is chosen in one function,
// statusOf, from the sentinels of raftregistry and raftregistry/state.
package httpd
