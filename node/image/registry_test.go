package image

import (
	"context"
	"errors"
	"io"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// requestLog records the requests a test registry answers.
type requestLog struct {
	mu   sync.Mutex
	reqs []string // "METHOD path"
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// since returns the requests made after the first n, and how many there are now.
func (l *requestLog) since(n int) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.reqs[n:]), len(l.reqs)
}

func blobGets(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") && strings.Contains(r, "/blobs/") {
			out = append(out, r)
		}
	}
	return out
}

// A docker:// reference pulls from the registry (here an in-process one on
// loopback, reached over plain HTTP): the image Pack made unpacks with its
// digest and files, and a second use of it reads no blob again.
func TestUnpackFromRegistry(t *testing.T) {
	bin := staticGreeter(t)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	d, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.0.0", Out: layoutDir, Env: []string{"GREETER_VERSION=1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	packed, err := lp.Image(d)
	if err != nil {
		t.Fatal(err)
	}

	var log requestLog
	srv := httptest.NewServer(log.wrap(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0)))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref := "docker://" + host + "/greeter:1.0.0"
	tag, err := name.NewTag(strings.TrimPrefix(ref, "docker://"))
	if err != nil {
		t.Fatal(err)
	}
	if s := tag.Context().Registry.Scheme(); s != "http" {
		t.Fatalf("scheme of %s = %s; want plain http for a loopback registry", host, s)
	}
	if err := remote.Write(tag, packed); err != nil {
		t.Fatal(err)
	}
	_, n := log.since(0)

	c, err := New(Config{Dir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	img, err := c.Unpack(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d.String() || !strings.HasPrefix(img.Rootfs, c.dir) {
		t.Fatalf("image = %+v; want digest %s in the cache", img, d)
	}
	if len(img.Entrypoint) != 1 || img.Entrypoint[0] != "/greeter" || !slices.Contains(img.Env, "GREETER_VERSION=1.0.0") {
		t.Fatalf("image config = %+v", img)
	}
	want, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(img.Rootfs, "greeter"))
	if err != nil || string(got) != string(want) {
		t.Fatalf("unpacked binary: %d bytes (%v); want the packed %d bytes", len(got), err, len(want))
	}
	if fi, err := os.Stat(filepath.Join(img.Rootfs, "greeter")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("unpacked binary: %v, %v", fi, err)
	}
	first, n := log.since(n)
	if len(blobGets(first)) == 0 {
		t.Fatalf("first unpack made no blob request (%v); want a pull", first)
	}

	// The second use resolves the tag (a manifest request: a tag can move)
	// but reads no blob: the rootfs is the cached one, not written again.
	marker := filepath.Join(img.Rootfs, "tmp", "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	img2, err := c.Unpack(ctx, ref)
	if err != nil || img2.Rootfs != img.Rootfs || img2.Digest != img.Digest {
		t.Fatalf("second unpack = %+v, %v; want the cached %s", img2, err, img.Rootfs)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the cached rootfs was unpacked again")
	}
	second, _ := log.since(n)
	if b := blobGets(second); len(b) != 0 {
		t.Fatalf("second unpack pulled again: %v", b)
	}

	if _, err := c.Unpack(ctx, "docker://"+host+"/greeter:9.9.9"); err == nil || !strings.Contains(err.Error(), "pull docker://"+host+"/greeter:9.9.9") {
		t.Fatalf("unknown tag: %v; want a pull error naming the reference", err)
	}
}

// A bare name:tag is the registry form: Docker Hub's library, over https.
// Only parsed; no request leaves the machine.
func TestBareReferenceIsDockerHub(t *testing.T) {
	for ref, repo := range map[string]string{
		"greeter:1.0.0":                    "library/greeter",
		"docker://greeter:1.0.0":           "library/greeter",
		"acme/greeter:1.0.0":               "acme/greeter",
		"docker://docker.io/greeter:1.0.0": "library/greeter",
	} {
		r, err := name.ParseReference(strings.TrimPrefix(ref, "docker://"))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if reg := r.Context().RegistryStr(); reg != name.DefaultRegistry || r.Context().Registry.Scheme() != "https" {
			t.Errorf("%s: registry %s over %s; want %s over https", ref, reg, r.Context().Registry.Scheme(), name.DefaultRegistry)
		}
		if got := r.Context().RepositoryStr(); got != repo || r.Identifier() != "1.0.0" {
			t.Errorf("%s: repository %s, tag %s; want %s, 1.0.0", ref, got, r.Identifier(), repo)
		}
	}
	c, err := New(Config{Dir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(context.Background(), "docker://Greeter:1.0.0"); !errors.Is(err, ErrBadReference) {
		t.Fatalf("upper-case repository: %v; want ErrBadReference", err)
	}
}

// roundTrips records that a request reached it.
type roundTrips struct{ hosts []string }

func (r *roundTrips) RoundTrip(req *http.Request) (*http.Response, error) {
	r.hosts = append(r.hosts, req.URL.Scheme+"://"+req.URL.Host)
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

// Plain HTTP reaches only a loopback registry, as with Docker: a private
// (RFC 1918) address or a .local name, which go-containerregistry would try
// over http after https, is refused before any connection.
func TestRegistryPlainHTTPOnlyLoopback(t *testing.T) {
	for _, host := range []string{"10.1.2.3:5000", "192.168.1.10:5000", "registry.local:5000", "127.0.0.1.example.com"} {
		r, err := name.ParseReference(host + "/greeter:1.0.0")
		if err != nil {
			t.Fatal(err)
		}
		if s := r.Context().Registry.Scheme(); s != "http" {
			t.Fatalf("%s: go-containerregistry's scheme is %s; this test wants a host it would try over http", host, s)
		}
		var base roundTrips
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/v2/", nil)
		if _, err := (loopbackHTTPOnly{&base}).RoundTrip(req); !errors.Is(err, ErrInsecureRegistry) || len(base.hosts) != 0 {
			t.Errorf("http://%s: %v, reached %v; want ErrInsecureRegistry before any request", host, err, base.hosts)
		}
		req = httptest.NewRequest(http.MethodGet, "https://"+host+"/v2/", nil)
		if _, err := (loopbackHTTPOnly{&base}).RoundTrip(req); err != nil || len(base.hosts) != 1 {
			t.Errorf("https://%s: %v, reached %v; want it passed on", host, err, base.hosts)
		}
	}
	for _, host := range []string{"127.0.0.1:5000", "127.1.2.3:5000", "[::1]:5000", "localhost:5000"} {
		var base roundTrips
		req := httptest.NewRequest(http.MethodGet, "http://"+host+"/v2/", nil)
		if _, err := (loopbackHTTPOnly{&base}).RoundTrip(req); err != nil || len(base.hosts) != 1 {
			t.Errorf("http://%s: %v, reached %v; want a loopback registry reached over http", host, err, base.hosts)
		}
	}
}
