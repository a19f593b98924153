package driver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Mux is a Driver that runs each container with the driver its Spec names
// (Spec.Driver; "" is the default, exec), and remembers which driver runs
// which container for everything after Start. It has the optional abilities
// every driver of it has, and lists the handles of all of them.
type Mux struct {
	drivers map[string]Driver
	def     string

	mu    sync.Mutex
	owner map[string]string // container id -> driver name
}

var (
	_ Driver    = (*Mux)(nil)
	_ Recoverer = (*Mux)(nil)
	_ LogTailer = (*Mux)(nil)
	_ LogFiler  = (*Mux)(nil)
	_ Remover   = (*Mux)(nil)
)

// NewMux routes to drivers by name; def names the default, which must be
// among them.
func NewMux(def string, drivers map[string]Driver) (*Mux, error) {
	if drivers[def] == nil {
		return nil, fmt.Errorf("driver mux: default driver %q is not among %v", def, slices.Sorted(maps.Keys(drivers)))
	}
	return &Mux{drivers: drivers, def: def, owner: map[string]string{}}, nil
}

// pick returns the driver called name ("" for the default).
func (m *Mux) pick(name string) (string, Driver, error) {
	if name == "" {
		name = m.def
	}
	d, ok := m.drivers[name]
	if !ok {
		return "", nil, fmt.Errorf("%w: driver: %q is not available on this node (it has %v)", ErrInvalidSpec, name, slices.Sorted(maps.Keys(m.drivers)))
	}
	return name, d, nil
}

// of returns the driver running id, or ErrNotFound.
func (m *Mux) of(id string) (Driver, error) {
	m.mu.Lock()
	name, ok := m.owner[id]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return m.drivers[name], nil
}

// Start starts spec with the driver it names.
func (m *Mux) Start(ctx context.Context, spec Spec) (*Handle, error) {
	name, d, err := m.pick(spec.Driver)
	if err != nil {
		return nil, err
	}
	h, err := d.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.owner[spec.ID] = name
	m.mu.Unlock()
	return h, nil
}

// Wait waits with the container's driver.
func (m *Mux) Wait(ctx context.Context, id string) (<-chan ExitResult, error) {
	d, err := m.of(id)
	if err != nil {
		return nil, err
	}
	return d.Wait(ctx, id)
}

// Stop stops with the container's driver.
func (m *Mux) Stop(ctx context.Context, id string, grace time.Duration) error {
	d, err := m.of(id)
	if err != nil {
		return err
	}
	return d.Stop(ctx, id, grace)
}

// Inspect inspects with the container's driver.
func (m *Mux) Inspect(id string) (Status, error) {
	d, err := m.of(id)
	if err != nil {
		return Status{}, err
	}
	return d.Inspect(id)
}

// LoadHandles lists the handles of every driver that keeps them, each
// marked with its driver's name.
func (m *Mux) LoadHandles() ([]*Handle, error) {
	var all []*Handle
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(m.drivers)) {
		l, ok := m.drivers[name].(interface{ LoadHandles() ([]*Handle, error) })
		if !ok {
			continue
		}
		hs, err := l.LoadHandles()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s driver: %w", name, err))
		}
		for _, h := range hs {
			h.Driver = name
			all = append(all, h)
		}
	}
	return all, errors.Join(errs...)
}

// Recover re-adopts h with the driver that started it.
func (m *Mux) Recover(h *Handle) error {
	if h == nil {
		return fmt.Errorf("%w: nil handle", ErrInvalidSpec)
	}
	name, d, err := m.pick(h.Driver)
	if err != nil {
		return err
	}
	r, ok := d.(Recoverer)
	if !ok {
		return fmt.Errorf("recover %s: %w (the %s driver cannot re-adopt)", h.ID, ErrNotRunning, name)
	}
	if err := r.Recover(h); err != nil {
		return err
	}
	m.mu.Lock()
	m.owner[h.ID] = name
	m.mu.Unlock()
	return nil
}

// candidates is the driver of id when known, else every driver (a
// container whose process did not survive the agent is known to none).
func (m *Mux) candidates(id string) []Driver {
	if d, err := m.of(id); err == nil {
		return []Driver{d}
	}
	var ds []Driver
	for _, name := range slices.Sorted(maps.Keys(m.drivers)) {
		ds = append(ds, m.drivers[name])
	}
	return ds
}

// Tail returns the container's last lines from the driver that has them.
func (m *Mux) Tail(id string, lines int) (string, error) {
	err := fmt.Errorf("%w: %s", ErrNotFound, id)
	for _, d := range m.candidates(id) {
		if t, ok := d.(LogTailer); ok {
			var s string
			if s, err = t.Tail(id, lines); err == nil {
				return s, nil
			}
		}
	}
	return "", err
}

// LogFile names the container's output file, from the driver that has it.
func (m *Mux) LogFile(id string) (string, error) {
	err := fmt.Errorf("%w: %s", ErrNotFound, id)
	for _, d := range m.candidates(id) {
		if l, ok := d.(LogFiler); ok {
			var p string
			if p, err = l.LogFile(id); err == nil {
				return p, nil
			}
		}
	}
	return "", err
}

// Remove removes the container from every driver that may have it.
func (m *Mux) Remove(id string) error {
	var errs []error
	for _, d := range m.candidates(id) {
		if r, ok := d.(Remover); ok {
			if err := r.Remove(id); err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.owner, id)
	m.mu.Unlock()
	return nil
}
