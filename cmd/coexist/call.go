package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/client"
	"github.com/coexist-dev/coexist/routing"
)

// sdkFlags are the flags of the commands that route as an SDK client:
// `coexist call` and `coexist route`.
type sdkFlags struct {
	reg      clientFlags
	client   string
	requires requireFlag
	node     string
	timeout  time.Duration
}

// requireFlag is a repeatable --require service=constraint.
type requireFlag map[string]string

func (r requireFlag) String() string {
	parts := make([]string, 0, len(r))
	for k, v := range r {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (r requireFlag) Set(s string) error {
	svc, cons, ok := strings.Cut(s, "=")
	svc, cons = strings.TrimSpace(svc), strings.TrimSpace(cons)
	if !ok || svc == "" || cons == "" {
		return fmt.Errorf("want service=constraint, e.g. greeter='~> 1.2'")
	}
	r[svc] = cons
	return nil
}

func (f *sdkFlags) register(fs *flag.FlagSet) {
	f.requires = requireFlag{}
	f.reg.register(fs)
	fs.StringVar(&f.client, "client", "", "the calling client, name@version (required), e.g. web@1.3.0")
	fs.Var(f.requires, "require", "the client's own constraint on a service's version, service=constraint (repeatable)")
	fs.StringVar(&f.node, "node", "", "the node the client runs on, for own-node preference")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "how long to wait for the route table and the answer")
}

// parseClient splits --client into a name and a version.
func (f *sdkFlags) parseClient() (string, string, error) {
	i := strings.LastIndexByte(f.client, '@')
	if i <= 0 || i == len(f.client)-1 {
		return "", "", fmt.Errorf("--client %q: want name@version, e.g. web@1.3.0", f.client)
	}
	name, ver := f.client[:i], f.client[i+1:]
	if err := api.CheckVersion(ver); err != nil {
		return "", "", fmt.Errorf("--client %q: %w", f.client, err)
	}
	return name, ver, nil
}

// newClient starts an SDK client with the flags' identity and registry.
func (f *sdkFlags) newClient(ctx context.Context) (*client.Client, error) {
	name, ver, err := f.parseClient()
	if err != nil {
		return nil, err
	}
	ac, err := f.reg.client()
	if err != nil {
		return nil, err
	}
	return client.New(ctx, client.Config{Name: name, Version: ver, Requires: f.requires, Node: f.node,
		APIClient: ac, InitialTimeout: f.timeout})
}

// parseSDKFlags parses args and checks the positional arguments against
// want (see checkArgs); it returns them, or the exit code when the command
// should stop.
func parseSDKFlags(fs *flag.FlagSet, f *sdkFlags, args []string, want ...string) ([]string, int, bool) {
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return nil, code, false
	}
	if f.client == "" {
		fmt.Fprintf(fs.Output(), "coexist %s: --client name@version is required\n", fs.Name())
		return nil, 2, false
	}
	if _, _, err := f.parseClient(); err != nil {
		fmt.Fprintf(fs.Output(), "coexist %s: %v\n", fs.Name(), err)
		return nil, 2, false
	}
	if !checkArgs(fs.Output(), fs.Name(), pos, want...) {
		return nil, 2, false
	}
	return pos, 0, true
}

func runCall(args []string, stdout, stderr io.Writer) int {
	var f sdkFlags
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	method := fs.String("method", http.MethodGet, "HTTP method")
	data := fs.String("data", "", "request body")
	describe(fs, "--client name@version [--require service=constraint]... [flags] <service> [path]",
		"Performs one call routed as the client would route it, and prints the status,\n"+
			"Coexist-Served-By and body. Exits 0 only on a 2xx answer.",
		"coexist call --client web@1.3.0 greeter /hello")
	pos, code, ok := parseSDKFlags(fs, &f, args, "<service>", "[path]")
	if !ok {
		return code
	}
	service, path := pos[0], "/"
	if len(pos) == 2 {
		path = pos[1]
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	c, err := f.newClient(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "coexist call: %v\n", err)
		return 1
	}
	defer c.Close()
	var body io.Reader
	if *data != "" {
		body = strings.NewReader(*data)
	}
	req, err := http.NewRequestWithContext(ctx, *method, "http://"+service+path, body)
	if err != nil {
		fmt.Fprintf(stderr, "coexist call: %v\n", err)
		return 2
	}
	resp, err := c.HTTPClient().Do(req)
	if err != nil {
		// The *url.Error around it repeats the URL; the cause says it all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		fmt.Fprintf(stderr, "coexist call: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	servedBy := resp.Header.Get(api.HeaderServedBy)
	if servedBy == "" {
		servedBy = "(none: the call reached no service)"
	}
	fmt.Fprintf(stdout, "status: %s\nserved-by: %s\n\n", resp.Status, servedBy)
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintf(stderr, "coexist call: read answer: %v\n", err)
		return 1
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return 1
	}
	return 0
}

func runRoute(args []string, stdout, stderr io.Writer) int {
	var f sdkFlags
	fs := flag.NewFlagSet("route", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f.register(fs)
	describe(fs, "--client name@version [--require service=constraint]... [flags] <service>",
		"Prints which version and container a call from the client would go to, why,\n"+
			"and every version considered. Exits 1 when no version serves the client.",
		"coexist route --client web@2.1.0 greeter")
	pos, code, ok := parseSDKFlags(fs, &f, args, "<service>")
	if !ok {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	defer cancel()
	c, err := f.newClient(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "coexist route: %v\n", err)
		return 1
	}
	defer c.Close()
	info, rerr := c.Route(pos[0])
	if err := printRoute(stdout, info, rerr); err != nil {
		fmt.Fprintf(stderr, "coexist route: %v\n", err)
		return 1
	}
	if rerr != nil {
		fmt.Fprintf(stderr, "coexist route: %v\n", rerr)
		return 1
	}
	return 0
}

func printRoute(w io.Writer, r client.RouteInfo, routeErr error) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "service:\t%s\n", r.Service)
	fmt.Fprintf(tw, "client:\t%s\n", r.Client)
	if r.Requirement != "" {
		fmt.Fprintf(tw, "requires:\t%s\n", r.Requirement)
	}
	if routeErr == nil {
		fmt.Fprintf(tw, "version:\t%s (%s, clients %q)\n", r.Version, r.State, r.Clients)
		fmt.Fprintf(tw, "container:\t%s on node %s, gateway %s\n", r.Container.ID, r.Container.Node, r.Container.Gateway)
		fmt.Fprintf(tw, "reason:\t%s\n", r.Reason)
	} else {
		fmt.Fprintf(tw, "version:\tnone\n")
	}
	fmt.Fprintf(tw, "table age:\t%s\n", r.TableAge.Round(time.Millisecond))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Candidates) > 0 {
		fmt.Fprintln(w, "\nVersions considered, highest first:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VERSION\tSTATE\tCLIENTS\tRUNNING\tCANDIDATE\tWHY")
		for i := len(r.Candidates) - 1; i >= 0; i-- {
			cd := r.Candidates[i]
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\n", cd.Version, cd.State, cd.Clients, cd.Running, yesNo(cd.Candidate), cd.Reason)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintln(w, "\nContainers:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VERSION\tCONTAINER\tNODE\tUSABLE\tINFLIGHT\tNOTE")
		for i := len(r.Candidates) - 1; i >= 0; i-- {
			cd := r.Candidates[i]
			for _, ct := range cd.Containers {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%d\t%s\n", cd.Version, ct.ID, ct.Node, yesNo(ct.Usable), ct.Inflight, containerNote(r, cd, ct))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// containerNote says where a container stands in the route.
func containerNote(r client.RouteInfo, cd routing.Candidate, ct routing.ContainerCheck) string {
	if !ct.Usable {
		return ct.Reason
	}
	if !cd.Chosen {
		return ""
	}
	for i, t := range r.Containers {
		if t.ID == ct.ID {
			if i == 0 {
				return "chosen"
			}
			return "fallback #" + strconv.Itoa(i)
		}
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
