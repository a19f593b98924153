package image

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coexist-dev/coexist/node/driver"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/hashicorp/go-hclog"
)

// Sentinel errors.
var (
	// ErrBadReference: the image reference cannot be parsed.
	ErrBadReference = errors.New("invalid image reference")
	// ErrNoSuchImage: the layout or archive holds no image of that tag.
	ErrNoSuchImage = errors.New("image not found")
	// ErrInsecureRegistry: a registry other than a loopback one was to be
	// reached over plain HTTP.
	ErrInsecureRegistry = errors.New("plain http to a registry that is not on loopback")
)

// Annotations of an image layout's index that name an image: the tag
// (skopeo's `oci:dir:tag`) and the full name (docker save, containerd).
const (
	annotationRefName = "org.opencontainers.image.ref.name"
	annotationName    = "io.containerd.image.name"
)

// Config configures a Cache.
type Config struct {
	// Dir holds the cache: Dir/sha256/<manifest hex>/{rootfs,image.json},
	// Dir/tmp (unpacks in progress). Required.
	Dir    string
	Logger hclog.Logger
}

// Cache unpacks images once per manifest digest; see the package doc.
type Cache struct {
	dir string
	log hclog.Logger

	mu       sync.Mutex
	inflight map[string]*unpackCall // by manifest digest
}

type unpackCall struct {
	done chan struct{}
	img  driver.Image
	err  error
}

var _ driver.ImageStore = (*Cache)(nil)

// New creates the cache's directories.
func New(cfg Config) (*Cache, error) {
	if cfg.Dir == "" {
		return nil, errors.New("image cache: dir is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("image cache: %w", err)
	}
	for _, d := range []string{"sha256", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("image cache: %w", err)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Cache{dir: dir, log: cfg.Logger.Named("images"), inflight: map[string]*unpackCall{}}, nil
}

// Unpack resolves ref and returns its unpacked image, unpacking it first
// unless the cache holds its digest already.
func (c *Cache) Unpack(ctx context.Context, ref string) (driver.Image, error) {
	img, err := c.Resolve(ctx, ref)
	if err != nil {
		return driver.Image{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return driver.Image{}, fmt.Errorf("image %s: digest: %w", ref, err)
	}
	if di, err := c.cached(d); err == nil {
		return di, nil
	}
	c.mu.Lock()
	call, ok := c.inflight[d.String()]
	if !ok {
		call = &unpackCall{done: make(chan struct{})}
		c.inflight[d.String()] = call
		c.mu.Unlock()
		call.img, call.err = c.unpack(ref, d, img)
		c.mu.Lock()
		delete(c.inflight, d.String())
		close(call.done)
	}
	c.mu.Unlock()
	select {
	case <-call.done:
		return call.img, call.err
	case <-ctx.Done():
		return driver.Image{}, ctx.Err()
	}
}

// Resolve finds the image ref names, without unpacking it. Refs take the
// transports of containers/image (docs/design.md §6):
//
//	oci:/path/to/layout[:tag]          an OCI image layout directory
//	oci-archive:/path/to/image.tar[:tag]  a tar of one (docker save makes one too)
//	docker://host/name:tag, name:tag   a registry
func (c *Cache) Resolve(ctx context.Context, ref string) (v1.Image, error) {
	switch {
	case strings.HasPrefix(ref, "oci:"):
		p, tag := splitPathTag(strings.TrimPrefix(ref, "oci:"))
		return fromLayout(p, tag, "oci:"+p)
	case strings.HasPrefix(ref, "oci-archive:"):
		p, tag := splitPathTag(strings.TrimPrefix(ref, "oci-archive:"))
		return c.fromArchive(p, tag)
	}
	r, err := name.ParseReference(strings.TrimPrefix(ref, "docker://"))
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadReference, ref, err)
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithTransport(loopbackHTTPOnly{remote.DefaultTransport}),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	// Layers stream from the registry into the one-pass verified unpack;
	// the unpacked rootfs is the cache. go-containerregistry's blob cache
	// (cache.Image) is not used: validate's existence check opened each
	// layer through it, which left an empty blob file in the cache that was
	// then read as the layer, and every pull failed its digest check.
	return img, nil
}

// loopbackHTTPOnly lets plain HTTP reach only a loopback registry, as
// Docker does: go-containerregistry tries http after https for private
// (RFC 1918) addresses and .local names too, where anyone on the network
// could serve the image.
type loopbackHTTPOnly struct{ base http.RoundTripper }

func (t loopbackHTTPOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !isLoopback(req.URL.Hostname()) {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("%w: %s://%s", ErrInsecureRegistry, req.URL.Scheme, req.URL.Host)
	}
	return t.base.RoundTrip(req)
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// splitPathTag splits "/path[:tag]": the tag is what follows the first ':'
// after the path's last '/'.
func splitPathTag(s string) (string, string) {
	slash := strings.LastIndexByte(s, '/')
	if i := strings.IndexByte(s[slash+1:], ':'); i >= 0 {
		return s[:slash+1+i], s[slash+2+i:]
	}
	return s, ""
}

// fromLayout finds tag in the layout at dir: by its ref.name annotation (a
// bare tag), or its full name ("greeter:1.0.0"). With no tag, the layout must
// hold exactly one image. Errors name the layout as ref does (an archive is
// unpacked into a directory the operator never named).
func fromLayout(dir, tag, ref string) (v1.Image, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: oci: needs a path", ErrBadReference)
	}
	lp, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("open image layout %s: %w", ref, err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("open image layout %s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read image layout %s: %w", ref, err)
	}
	var found []v1.Descriptor
	var tags []string
	for _, d := range im.Manifests {
		rn, full := d.Annotations[annotationRefName], d.Annotations[annotationName]
		tags = append(tags, cmpOr(full, rn))
		if tag == "" || rn == tag || full == tag || strings.HasSuffix(full, "/"+tag) {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("%w: %s holds no image tagged %q (it holds %s)", ErrNoSuchImage, ref, tag, strings.Join(tags, ", "))
	case len(found) > 1:
		return nil, fmt.Errorf("%w: %s holds %d images; name one with %s:<tag> (%s)", ErrBadReference, ref, len(found), ref, strings.Join(tags, ", "))
	}
	if found[0].MediaType.IsIndex() {
		ii, err := idx.ImageIndex(found[0].Digest)
		if err != nil {
			return nil, fmt.Errorf("read image layout %s: %w", ref, err)
		}
		return imageForPlatform(ii)
	}
	img, err := idx.Image(found[0].Digest)
	if err != nil {
		return nil, fmt.Errorf("read image layout %s: %w", ref, err)
	}
	return img, nil
}

// imageForPlatform picks this machine's image out of a multi-platform index.
func imageForPlatform(ii v1.ImageIndex) (v1.Image, error) {
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range im.Manifests {
		if d.Platform == nil || (d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH) {
			return ii.Image(d.Digest)
		}
	}
	return nil, fmt.Errorf("%w: no image for linux/%s in the index", ErrNoSuchImage, runtime.GOARCH)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// fromArchive reads a tar: `docker save` output (a manifest.json, read by
// go-containerregistry's tarball package), else an OCI layout in a tar
// (skopeo's oci-archive), which is unpacked into a temporary layout first.
func (c *Cache) fromArchive(p, tag string) (v1.Image, error) {
	var tagp *name.Tag
	var err error
	if tag != "" {
		var t name.Tag
		if t, err = name.NewTag(tag); err == nil {
			tagp = &t
		}
	}
	// A tag docker save could not have written is looked for in an OCI
	// layout only: without a tag, tarball would hand back its one image,
	// whatever was asked for.
	if err == nil {
		var img v1.Image
		if img, err = tarball.ImageFromPath(p, tagp); err == nil {
			return img, nil
		}
	}
	f, oerr := os.Open(p)
	if oerr != nil {
		return nil, fmt.Errorf("open image archive: %w", oerr)
	}
	defer f.Close()
	dir, derr := os.MkdirTemp(filepath.Join(c.dir, "tmp"), "archive-")
	if derr != nil {
		return nil, fmt.Errorf("open image archive: %w", derr)
	}
	// The layout's blobs are read lazily; the directory is removed once
	// the image is unpacked, by the next cache cleanup (see unpack).
	if xerr := untar(f, dir); xerr != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("open image archive %s: %w (as docker save: %w)", p, xerr, err)
	}
	return fromLayout(dir, tag, "oci-archive:"+p)
}

// imageMeta is what image.json keeps beside an unpacked rootfs.
type imageMeta struct {
	Ref        string    `json:"ref"`
	Digest     string    `json:"digest"`
	Entrypoint []string  `json:"entrypoint,omitempty"`
	Cmd        []string  `json:"cmd,omitempty"`
	Env        []string  `json:"env,omitempty"`
	WorkingDir string    `json:"working_dir,omitempty"`
	UnpackedAt time.Time `json:"unpacked_at"`
}

func (m imageMeta) image(dir string) driver.Image {
	return driver.Image{Digest: m.Digest, Rootfs: filepath.Join(dir, "rootfs"),
		Entrypoint: m.Entrypoint, Cmd: m.Cmd, Env: m.Env, WorkingDir: m.WorkingDir}
}

// dirOf is the cache directory of a manifest digest.
func (c *Cache) dirOf(d v1.Hash) string { return filepath.Join(c.dir, d.Algorithm, d.Hex) }

// cached returns the unpacked image of d, when the cache holds it.
func (c *Cache) cached(d v1.Hash) (driver.Image, error) {
	dir := c.dirOf(d)
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return driver.Image{}, err
	}
	var m imageMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return driver.Image{}, fmt.Errorf("decode %s: %w", dir, err)
	}
	return m.image(dir), nil
}

// unpack verifies img against its digests, flattens its layers into a
// staging directory and renames that into place: a rootfs in the cache is
// always complete.
func (c *Cache) unpack(ref string, d v1.Hash, img v1.Image) (driver.Image, error) {
	start := time.Now()
	// The manifest, the config and their digests; the layers' digests are
	// checked as they are extracted, in one read (verifyingImage), unless a
	// layer is of a compression it does not read (then validate.Image reads
	// every layer first).
	vi, onePass, err := newVerifyingImage(img)
	if err != nil {
		return driver.Image{}, fmt.Errorf("image %s: verify %s: %w", ref, d, err)
	}
	var opts []validate.Option
	if onePass {
		opts = append(opts, validate.Fast)
	}
	if err := validate.Image(img, opts...); err != nil {
		return driver.Image{}, fmt.Errorf("image %s: verify %s: %w", ref, d, err)
	}
	flat := img
	if onePass {
		defer vi.close()
		flat = vi
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return driver.Image{}, fmt.Errorf("image %s: config: %w", ref, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	stage := filepath.Join(c.dir, "tmp", d.Hex+"."+hex.EncodeToString(b))
	defer os.RemoveAll(stage)
	rootfs := filepath.Join(stage, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return driver.Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	rc := mutate.Extract(flat)
	err = untar(rc, rootfs)
	if err == nil {
		// To the end of the flattened stream: the extraction is done
		// with every layer before verify reads what is left of them.
		_, err = io.Copy(io.Discard, rc)
	}
	rc.Close()
	if err != nil && onePass {
		// A layer that does not match its digest often fails to
		// decompress first: say so rather than how it failed to read.
		if verr := validate.Image(img); verr != nil {
			return driver.Image{}, fmt.Errorf("image %s: verify %s: %w", ref, d, verr)
		}
	}
	if err != nil {
		return driver.Image{}, fmt.Errorf("image %s: unpack: %w", ref, err)
	}
	if onePass {
		if err := vi.verify(); err != nil {
			return driver.Image{}, fmt.Errorf("image %s: verify %s: %w", ref, d, err)
		}
	}
	if err := mountPoints(rootfs); err != nil {
		return driver.Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	m := imageMeta{Ref: ref, Digest: d.String(), Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
		Env: cf.Config.Env, WorkingDir: cf.Config.WorkingDir, UnpackedAt: time.Now().UTC()}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(stage, "image.json"), mb, 0o644); err != nil {
		return driver.Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	dst := c.dirOf(d)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return driver.Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	if err := os.Rename(stage, dst); err != nil {
		if di, cerr := c.cached(d); cerr == nil {
			return di, nil // another agent on this cache got there first
		}
		return driver.Image{}, fmt.Errorf("image %s: %w", ref, err)
	}
	c.log.Info("image unpacked", "ref", ref, "digest", d.String(), "took", time.Since(start))
	return m.image(dst), nil
}

// mountPoints makes the paths the oci driver mounts over, so that runc
// never has to create them in the shared, read-only rootfs.
func mountPoints(rootfs string) error {
	r, err := os.OpenRoot(rootfs)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, d := range []string{"proc", "dev", "sys", "tmp", "etc"} {
		if err := r.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("mount point /%s: %w", d, err)
		}
	}
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		if _, err := r.Lstat(f); errors.Is(err, os.ErrNotExist) {
			if err := r.WriteFile(f, nil, 0o644); err != nil {
				return fmt.Errorf("mount point /%s: %w", f, err)
			}
		}
	}
	return nil
}

// untar writes the entries of a tar stream under dir, through an os.Root:
// no name, link or symlink of the stream can reach outside dir. Devices and
// fifos are skipped (a container gets its own /dev).
func untar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read layer: %w", err)
		}
		n := path.Clean("/" + h.Name)[1:]
		if n == "" {
			continue
		}
		mode := os.FileMode(h.Mode) & os.ModePerm
		if err := root.MkdirAll(path.Dir(n), 0o755); err != nil && path.Dir(n) != "." {
			return fmt.Errorf("%s: %w", n, err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(n, mode); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			_ = root.Chmod(n, mode)
		case tar.TypeReg:
			_ = root.Remove(n)
			f, err := root.OpenFile(n, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		case tar.TypeSymlink:
			_ = root.Remove(n)
			if err := root.Symlink(h.Linkname, n); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		case tar.TypeLink:
			_ = root.Remove(n)
			if err := root.Link(path.Clean("/" + h.Linkname)[1:], n); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		default:
			continue
		}
		_ = root.Lchown(n, h.Uid, h.Gid)
	}
}
