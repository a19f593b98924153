package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// watchers is what the watcher sets of both systems share: their
// goroutines, their errors, and the wait for every watcher's first answer.
type watchers struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	errs     atomic.Int64
	firstErr atomic.Pointer[string]
}

// waitReady waits until ready is done (each watcher calls Done on its
// first answer), for at most a minute; on failure it stops the watchers and
// returns an error starting with what.
func (w *watchers) waitReady(ctx context.Context, ready *sync.WaitGroup, what string) error {
	done := make(chan struct{})
	go func() { ready.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(60 * time.Second):
		w.stop()
		return fmt.Errorf("%s after 60s (%d errors, first: %s)", what, w.errs.Load(), w.firstError())
	case <-ctx.Done():
		w.stop()
		return ctx.Err()
	}
}

func (w *watchers) firstError() string {
	if p := w.firstErr.Load(); p != nil {
		return *p
	}
	return "none"
}

func (w *watchers) fail(err error) {
	w.errs.Add(1)
	s := err.Error()
	w.firstErr.CompareAndSwap(nil, &s)
}

func (w *watchers) stop() {
	w.cancel()
	w.wg.Wait()
}
