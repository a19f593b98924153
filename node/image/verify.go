package image

import (
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// verifyingImage is an image whose layers check their digests (the
// manifest's, of the compressed blob) and diff ids (the config's, of the
// uncompressed tar) while they are extracted: one read and one
// decompression of each layer, where validate.Image then mutate.Extract
// decompressed each layer three times (issue 14). verify, after the
// extraction, reads what the extraction left of each layer and compares.
type verifyingImage struct {
	v1.Image
	layers []*verifyingLayer
}

// newVerifyingImage wraps img, when every layer is a gzip or plain tar
// (the two it verifies in one pass); ok is false otherwise.
func newVerifyingImage(img v1.Image) (vi *verifyingImage, ok bool, err error) {
	ls, err := img.Layers()
	if err != nil {
		return nil, false, err
	}
	vi = &verifyingImage{Image: img}
	for _, l := range ls {
		mt, err := l.MediaType()
		if err != nil {
			return nil, false, err
		}
		vl := &verifyingLayer{Layer: l}
		switch mt {
		case types.OCILayer, types.DockerLayer, types.DockerForeignLayer, types.OCIRestrictedLayer:
			vl.gzip = true
		case types.OCIUncompressedLayer, types.OCIUncompressedRestrictedLayer, types.DockerUncompressedLayer:
		default:
			return nil, false, nil
		}
		vi.layers = append(vi.layers, vl)
	}
	return vi, true, nil
}

func (vi *verifyingImage) Layers() ([]v1.Layer, error) {
	ls := make([]v1.Layer, len(vi.layers))
	for i, l := range vi.layers {
		ls[i] = l
	}
	return ls, nil
}

// verify drains and checks every layer (opening those never read).
func (vi *verifyingImage) verify() error {
	var errs []error
	for i, l := range vi.layers {
		if err := l.verify(); err != nil {
			errs = append(errs, fmt.Errorf("layer[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// close releases the layers' blobs.
func (vi *verifyingImage) close() {
	for _, l := range vi.layers {
		l.close()
	}
}

type verifyingLayer struct {
	v1.Layer
	gzip bool

	mu         sync.Mutex
	blob       io.ReadCloser
	compressed hash.Hash // of the blob
	tar        hash.Hash // of the uncompressed tar
	r          io.Reader // the uncompressed tar, hashed as read
	err        error
}

// open opens the blob once, behind the hashes.
func (l *verifyingLayer) open() error {
	if l.r != nil || l.err != nil {
		return l.err
	}
	l.blob, l.err = l.Layer.Compressed()
	if l.err != nil {
		return l.err
	}
	l.compressed, l.tar = sha256.New(), sha256.New()
	src := io.TeeReader(l.blob, l.compressed)
	if l.gzip {
		zr, err := gzip.NewReader(src)
		if err != nil {
			l.err = fmt.Errorf("gunzip: %w", err)
			return l.err
		}
		zr.Multistream(true)
		l.r = io.TeeReader(zr, l.tar)
	} else {
		l.r = io.TeeReader(src, l.tar)
	}
	return nil
}

// Uncompressed returns the layer's tar, hashed as it is read; its Close
// leaves the blob open for verify.
func (l *verifyingLayer) Uncompressed() (io.ReadCloser, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.open(); err != nil {
		return nil, err
	}
	return io.NopCloser(readerFunc(l.read)), nil
}

func (l *verifyingLayer) read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func (l *verifyingLayer) verify() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.open(); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, l.r); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	// The gzip stream's end is read; the blob may hold nothing more.
	if _, err := io.Copy(l.compressed, l.blob); err != nil {
		return fmt.Errorf("read: %w", err)
	}
	want, err := l.Layer.Digest()
	if err != nil {
		return err
	}
	if got := sumHex(l.compressed); want.Algorithm != "sha256" || got != want.Hex {
		return fmt.Errorf("mismatched digest: manifest says %s, the blob's is sha256:%s", want, got)
	}
	wantDiff, err := l.Layer.DiffID()
	if err != nil {
		return err
	}
	if got := sumHex(l.tar); wantDiff.Algorithm != "sha256" || got != wantDiff.Hex {
		return fmt.Errorf("mismatched diff id: config says %s, the tar's is sha256:%s", wantDiff, got)
	}
	return nil
}

func (l *verifyingLayer) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blob != nil {
		_ = l.blob.Close()
	}
}

func sumHex(h hash.Hash) string { return fmt.Sprintf("%x", h.Sum(nil)) }
