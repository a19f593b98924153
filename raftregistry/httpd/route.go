package httpd

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/raftregistry/state"
	"github.com/coexist-dev/coexist/routing"
)

// routeRand draws the power-of-two choice from the runtime's source.
type routeRand struct{}

func (routeRand) IntN(n int) int { return rand.IntN(n) }

// getRoute answers what routing.Select chooses for a client calling a
// service, on this server's table:
// ?service=S&client=NAME&client_version=V[&require=svc:range ...][&node=ID].
func (s *Server) getRoute(w http.ResponseWriter, r *http.Request, c *call) error {
	q := r.URL.Query()
	service := q.Get("service")
	if err := state.ValidateName("service", service); err != nil {
		return err
	}
	name := q.Get("client")
	ver := q.Get("client_version")
	if err := state.ValidateVersion("client_version", ver); err != nil {
		return err
	}
	var requires map[string]string
	for _, req := range q["require"] {
		svc, rng, ok := strings.Cut(req, ":")
		if !ok {
			return badRequest("require", "%q is not service:range, e.g. orders:~> 1.4", req)
		}
		svc = strings.TrimSpace(svc)
		if err := state.ValidateName("require", svc); err != nil {
			return err
		}
		if err := state.ValidateConstraint("require["+svc+"]", rng); err != nil {
			return err
		}
		if requires == nil {
			requires = map[string]string{}
		}
		if _, dup := requires[svc]; dup {
			return badRequest("require", "service %q is required twice", svc)
		}
		requires[svc] = rng
	}
	node := q.Get("node")
	if node != "" {
		if err := state.ValidateName("node", node); err != nil {
			return err
		}
	}
	client, err := routing.ParseClient(name, ver, requires, node)
	if err != nil {
		return badRequest("client_version", "%v", err)
	}
	return s.blocking(w, r, c, func(st *state.Store) (uint64, state.WatchSet, any, error) {
		_, ws := st.Watch(state.TableServices, state.TableContainers, state.TableNodes)
		idx, services, containers, nodes := routingInputs(st)
		t := routing.NewTable(services, containers, nodes)
		rt, err := routing.Select(t, client, service, routeRand{})
		if err != nil {
			return idx, ws, nil, routeError(err)
		}
		return idx, ws, rt.API(), nil
	})
}

// routeError makes "no compatible version" and "unknown service" 404s that
// carry routing's own explanation.
func routeError(err error) error {
	if errors.Is(err, routing.ErrNoCompatibleVersion) || errors.Is(err, routing.ErrUnknownService) {
		return httpErrorf(http.StatusNotFound, "%s", err.Error())
	}
	return err
}

// routingInputs are the tables routing reads, as the wire has them, and
// their highest index.
func routingInputs(st *state.Store) (uint64, []api.Service, []api.Container, []api.Node) {
	si, vs, _ := st.Versions("")
	ci, cts, _ := st.Containers("")
	ni, nodes, _ := st.Nodes()
	containers := make([]api.Container, 0, len(cts))
	for _, ct := range cts {
		containers = append(containers, ct.API(false))
	}
	apiNodes := make([]api.Node, 0, len(nodes))
	for _, n := range nodes {
		apiNodes = append(apiNodes, n.API())
	}
	return max(si, ci, ni), state.ServicesAPI(vs), containers, apiNodes
}
