package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// On disk, each container has a directory under <DataDir>/containers:
//
//	<DataDir>/containers/<id>/handle.json   the Handle, written after start
//	<DataDir>/containers/<id>/output.log    the child's stdout and stderr, in
//	                                        the order written (O_APPEND, capped)
//
// handle.json is what a restarted agent reads to re-adopt its containers.
// (Containers started by older agents have stdout.log and stderr.log
// instead; their handle.json names them.)
const (
	containersDir = "containers"
	handleFile    = "handle.json"
	outputFile    = "output.log"
	// stdoutFile and stderrFile are what older agents wrote.
	stdoutFile = "stdout.log"
	stderrFile = "stderr.log"
)

// store is the exec driver's persisted task store: one handle.json per
// container. The in-memory set of tasks is Exec.tasks.
type store struct {
	root string // <DataDir>/containers
}

func newStore(dataDir string) (store, error) {
	root := filepath.Join(dataDir, containersDir)
	if err := os.MkdirAll(root, 0o750); err != nil {
		return store{}, fmt.Errorf("create containers dir: %w", err)
	}
	return store{root: root}, nil
}

// dir is the container's directory; id must have passed validateID.
func (s store) dir(id string) string { return filepath.Join(s.root, id) }

// save writes h to its container's handle.json atomically (write a temporary
// file, sync, rename), so that a crash never leaves half a handle behind.
func (s store) save(h *Handle) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("encode handle: %w", err)
	}
	dir := s.dir(h.ID)
	tmp, err := os.CreateTemp(dir, handleFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("save handle: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save handle: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save handle: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save handle: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, handleFile)); err != nil {
		return fmt.Errorf("save handle: %w", err)
	}
	return nil
}

// loadAll reads every persisted handle, sorted by id. A handle that cannot be
// read is reported in the returned error (all such errors joined) and left
// out; the others are still returned.
func (s store) loadAll() ([]*Handle, error) {
	entries, err := os.ReadDir(s.root)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var hs []*Handle
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || validateID(e.Name()) != nil {
			continue
		}
		h, err := s.load(e.Name())
		if errors.Is(err, os.ErrNotExist) {
			continue // a directory with logs only: its handle was never written
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		hs = append(hs, h)
	}
	slices.SortFunc(hs, func(a, b *Handle) int { return strings.Compare(a.ID, b.ID) })
	return hs, errors.Join(errs...)
}

// load reads one container's handle.json.
func (s store) load(id string) (*Handle, error) {
	path := filepath.Join(s.dir(id), handleFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var h Handle
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	if h.ID != id {
		return nil, fmt.Errorf("decode %s: id %q does not match its directory", path, h.ID)
	}
	return &h, nil
}

// remove deletes the container's directory: handle and logs.
func (s store) remove(id string) error {
	if err := os.RemoveAll(s.dir(id)); err != nil {
		return fmt.Errorf("remove container dir: %w", err)
	}
	return nil
}
