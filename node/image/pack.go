package image

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PackSpec says what Pack writes.
type PackSpec struct {
	// Binary is a static executable; it becomes /<its base name> and the
	// image's entrypoint.
	Binary string
	// Tag is NAME:VERSION, e.g. greeter:1.0.0.
	Tag string
	// Out is the image layout directory, created when missing. An image of
	// the same tag already there is replaced; others are kept.
	Out string
	// Args are the image's default arguments (its Cmd); Env its
	// environment, KEY=VALUE.
	Args, Env []string
}

// Pack writes an OCI image of one static binary into an image layout, and
// returns its manifest digest. The image is reproducible: the same binary,
// tag, args and env give the same digest.
func Pack(s PackSpec) (v1.Hash, error) {
	t, err := name.NewTag(s.Tag)
	if err != nil || !strings.Contains(s.Tag[strings.LastIndexByte(s.Tag, '/')+1:], ":") {
		if err == nil {
			err = errors.New("no version")
		}
		return v1.Hash{}, fmt.Errorf("%w: tag %q: want NAME:VERSION: %w", ErrBadReference, s.Tag, err)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return v1.Hash{}, fmt.Errorf("env %q: want KEY=VALUE", kv)
		}
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("read binary: %w", err)
	}
	if !isStatic(bin) {
		return v1.Hash{}, fmt.Errorf("binary %s is not a static executable (build Go with CGO_ENABLED=0)", s.Binary)
	}
	base := filepath.Base(s.Binary)
	layerTar, err := rootfsTar(base, bin)
	if err != nil {
		return v1.Hash{}, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return v1.Hash{}, fmt.Errorf("make layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return v1.Hash{}, fmt.Errorf("make image: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("make image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Config.Entrypoint = []string{"/" + base}
	cf.Config.Cmd = s.Args
	cf.Config.Env = append([]string{"PATH=/usr/local/bin:/usr/bin:/bin"}, s.Env...)
	cf.Config.WorkingDir = "/"
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		return v1.Hash{}, fmt.Errorf("make image: %w", err)
	}
	lp, err := layout.FromPath(s.Out)
	if err != nil {
		if lp, err = layout.Write(s.Out, empty.Index); err != nil {
			return v1.Hash{}, fmt.Errorf("create image layout %s: %w", s.Out, err)
		}
	}
	full := s.Tag
	ann := map[string]string{annotationRefName: t.TagStr(), annotationName: full}
	if err := lp.ReplaceImage(img, match.Annotation(annotationName, full), layout.WithAnnotations(ann)); err != nil {
		return v1.Hash{}, fmt.Errorf("write image layout %s: %w", s.Out, err)
	}
	return img.Digest()
}

// rootfsTar is the image's one layer: the binary at /<base>, and the
// directories a container mounts over.
func rootfsTar(base string, bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"dev/", "etc/", "proc/", "sys/", "tmp/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
			return nil, err
		}
	}
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f, Mode: 0o644}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: base, Mode: 0o755, Size: int64(len(bin))}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// isStatic reports whether b is an ELF executable with no program
// interpreter (PT_INTERP): the image holds no dynamic loader or libraries.
func isStatic(b []byte) bool {
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return false
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
