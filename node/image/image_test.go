package image

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// staticGreeter builds examples/greeter with CGO_ENABLED=0, once.
func staticGreeter(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "image-test-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "greeter")
		cmd := exec.Command("go", "build", "-o", binPath, "../../examples/greeter")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestPackUnpack(t *testing.T) {
	bin := staticGreeter(t)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	d1, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.0.0", Out: layoutDir, Env: []string{"GREETER_VERSION=1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.1.0", Out: layoutDir, Env: []string{"GREETER_VERSION=1.1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.0.0", Out: layoutDir, Env: []string{"GREETER_VERSION=1.0.0"}})
	if err != nil || again != d1 || d1 == d2 {
		t.Fatalf("digests %s, %s, again %s (%v); want packing to be reproducible and the tags apart", d1, d2, again, err)
	}

	c, err := New(Config{Dir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.Unpack(context.Background(), "oci:"+layoutDir+":1.1.0")
	if err != nil {
		t.Fatal(err)
	}
	if img.Digest != d2.String() || !strings.HasPrefix(img.Rootfs, c.dir) {
		t.Fatalf("image = %+v; want digest %s in the cache", img, d2)
	}
	if len(img.Entrypoint) != 1 || img.Entrypoint[0] != "/greeter" || !slices.Contains(img.Env, "GREETER_VERSION=1.1.0") {
		t.Fatalf("image config = %+v", img)
	}
	if fi, err := os.Stat(filepath.Join(img.Rootfs, "greeter")); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("unpacked binary: %v, %v", fi, err)
	}
	for _, p := range []string{"proc", "dev", "tmp", "etc/resolv.conf"} {
		if _, err := os.Stat(filepath.Join(img.Rootfs, p)); err != nil {
			t.Errorf("mount point %s: %v", p, err)
		}
	}
	// A second use of the digest comes from the cache: the rootfs is not
	// written again.
	marker := filepath.Join(img.Rootfs, "tmp", "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	img2, err := c.Unpack(context.Background(), "oci:"+layoutDir+":greeter:1.1.0")
	if err != nil || img2.Rootfs != img.Rootfs {
		t.Fatalf("second unpack = %+v, %v; want the cached %s", img2, err, img.Rootfs)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Fatal("the cached rootfs was unpacked again")
	}

	if _, err := c.Unpack(context.Background(), "oci:"+layoutDir+":9.9.9"); !errors.Is(err, ErrNoSuchImage) {
		t.Fatalf("unknown tag: %v; want ErrNoSuchImage", err)
	}
	if _, err := c.Unpack(context.Background(), "oci:"+layoutDir); !errors.Is(err, ErrBadReference) {
		t.Fatalf("two images and no tag: %v; want ErrBadReference", err)
	}
}

// A layer whose bytes do not match its digest is refused, not unpacked.
func TestUnpackVerifiesDigests(t *testing.T) {
	bin := staticGreeter(t)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	if _, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.0.0", Out: layoutDir}); err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(layoutDir, "blobs", "sha256", "*"))
	var biggest string
	var size int64
	for _, b := range blobs {
		if fi, err := os.Stat(b); err == nil && fi.Size() > size {
			biggest, size = b, fi.Size()
		}
	}
	f, err := os.OpenFile(biggest, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("tampered"), size/2); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c, err := New(Config{Dir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Unpack(context.Background(), "oci:"+layoutDir+":1.0.0"); err == nil || !strings.Contains(err.Error(), "verify") {
		t.Fatalf("unpack of a tampered layer: %v; want a verify error", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(c.dir, "sha256")); len(ents) != 0 {
		t.Fatalf("the cache holds %d images after a failed verify; want none", len(ents))
	}
}

// An oci-archive: reference takes an OCI image layout in a tar (skopeo's
// oci-archive) by its tag, and a `docker save` tar (go-containerregistry's
// tarball) with or without its name.
func TestUnpackOCIArchive(t *testing.T) {
	bin := staticGreeter(t)
	work := t.TempDir()
	layoutDir := filepath.Join(work, "layout")
	d1, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.0.0", Out: layoutDir, Env: []string{"GREETER_VERSION=1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.1.0", Out: layoutDir, Env: []string{"GREETER_VERSION=1.1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(work, "greeter.tar")
	tarDir(t, layoutDir, archive)

	c, err := New(Config{Dir: filepath.Join(work, "cache")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for ref, want := range map[string]string{
		"oci-archive:" + archive + ":1.0.0":         d1.String(),
		"oci-archive:" + archive + ":greeter:1.1.0": d2.String(),
	} {
		img, err := c.Unpack(ctx, ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		ver := strings.TrimPrefix(strings.TrimPrefix(ref, "oci-archive:"+archive+":"), "greeter:")
		if img.Digest != want || !slices.Contains(img.Env, "GREETER_VERSION="+ver) {
			t.Fatalf("%s: image %+v; want digest %s and GREETER_VERSION=%s", ref, img, want, ver)
		}
		if fi, err := os.Stat(filepath.Join(img.Rootfs, "greeter")); err != nil || fi.Mode()&0o111 == 0 {
			t.Fatalf("%s: unpacked binary: %v, %v", ref, fi, err)
		}
	}
	// Errors name the archive, not the directory it was unpacked into.
	if _, err := c.Unpack(ctx, "oci-archive:"+archive+":9.9.9"); !errors.Is(err, ErrNoSuchImage) ||
		!strings.Contains(err.Error(), "oci-archive:"+archive+" holds no image tagged") {
		t.Fatalf("unknown tag: %v; want ErrNoSuchImage naming oci-archive:%s", err, archive)
	}
	if _, err := c.Unpack(ctx, "oci-archive:"+archive); !errors.Is(err, ErrBadReference) ||
		!strings.Contains(err.Error(), "name one with oci-archive:"+archive+":<tag>") {
		t.Fatalf("two images and no tag: %v; want ErrBadReference naming oci-archive:%s", err, archive)
	}
	if _, err := c.Unpack(ctx, "oci-archive:"+filepath.Join(work, "missing.tar")); err == nil {
		t.Fatal("a missing archive unpacked")
	}

	// docker save's format: one image, found with or without its name.
	lp, err := layout.FromPath(layoutDir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := lp.Image(d1)
	if err != nil {
		t.Fatal(err)
	}
	saved := filepath.Join(work, "saved.tar")
	if err := tarball.WriteToFile(saved, name.MustParseReference("greeter:1.0.0"), img); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"oci-archive:" + saved, "oci-archive:" + saved + ":greeter:1.0.0"} {
		got, err := c.Resolve(ctx, ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if gcf, err := got.ConfigName(); err != nil || gcf != cf {
			t.Fatalf("%s: config %s (%v); want %s", ref, gcf, err, cf)
		}
		u, err := c.Unpack(ctx, ref)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if !slices.Contains(u.Env, "GREETER_VERSION=1.0.0") {
			t.Fatalf("%s: env %v", ref, u.Env)
		}
	}
}

// tarDir writes the files under dir into a tar at out, named relative to
// dir, as skopeo writes an oci-archive.
func tarDir(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Name = filepath.ToSlash(rel)
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if cerr := tw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// countingImage counts the bytes read from its layers' blobs, compressed
// or not.
type countingImage struct {
	v1.Image
	read *atomic.Int64
}

func (c countingImage) Layers() ([]v1.Layer, error) {
	ls, err := c.Image.Layers()
	for i := range ls {
		ls[i] = countingLayer{ls[i], c.read}
	}
	return ls, err
}

type countingLayer struct {
	v1.Layer
	read *atomic.Int64
}

func (l countingLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	return countingReader{rc, l.read}, err
}

func (l countingLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	return countingReader{rc, l.read}, err
}

type countingReader struct {
	io.ReadCloser
	read *atomic.Int64
}

func (r countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	r.read.Add(int64(n))
	return n, err
}

// The unpack reads (and decompresses) each layer once, verifying its digest
// and diff id as it extracts it (issue 14: verifying, then extracting,
// decompressed each layer three times).
func TestUnpackReadsEachLayerOnce(t *testing.T) {
	bin := staticGreeter(t)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	if _, err := Pack(PackSpec{Binary: bin, Tag: "greeter:1.0.0", Out: layoutDir}); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Dir: filepath.Join(t.TempDir(), "cache")})
	if err != nil {
		t.Fatal(err)
	}
	ref := "oci:" + layoutDir + ":1.0.0"
	img, err := c.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	var size int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			t.Fatal(err)
		}
		size += n
	}
	var read atomic.Int64
	di, err := c.unpack(ref, d, countingImage{img, &read})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(di.Rootfs, filepath.Base(bin))); err != nil {
		t.Fatalf("unpacked rootfs lacks the binary: %v", err)
	}
	if got := read.Load(); got != size {
		t.Fatalf("read %d bytes of layers; want each layer's blob read once (%d bytes)", got, size)
	}
}
