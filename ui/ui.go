// Package ui is the operator's web UI, served by the registry at /ui/:
// services and their versions, a routing matrix of client versions by
// service versions, containers per node, nodes, and the last changes. It
// is plain HTML, CSS and JavaScript embedded in the binary; the page
// fetches nothing from the internet and talks only to the registry's own
// API, with the token the operator pastes (kept in session storage), and
// stays live through blocking queries.
//
// It decides nothing itself: which service version serves a client version
// is asked of the registry (GET /v1/route, routing.Select on the
// registry's table). It is a leaf: stdlib only.
package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed static
var static embed.FS

// Prefix is the path the UI is served under.
const Prefix = "/ui/"

// Mount returns a handler that serves the UI under Prefix and passes every
// other request to api.
func Mount(api http.Handler) http.Handler {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded tree is part of the binary
	}
	files := http.StripPrefix(Prefix, http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/ui":
			http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		case strings.HasPrefix(r.URL.Path, Prefix):
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			h := w.Header()
			// The page runs only its own script and talks only to this origin.
			h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			h.Set("Cache-Control", "no-cache")
			files.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
}
