package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// Waiting uses the registry's blocking queries: each read returns as soon as
// the record changes (or after blockWait), so an apply sees a container turn
// running the moment its agent reports it, without polling.
const (
	blockWait  = 5 * time.Second
	minBackoff = 100 * time.Millisecond
	maxBackoff = 2 * time.Second
)

// errGone means the record being waited for left the registry.
var errGone = errors.New("no longer in the registry")

// containerFailure is a container that its agent reported failed (or that
// stopped) while Terraform waited for it to become healthy.
type containerFailure struct {
	ID      string
	Node    string
	State   string
	Message string
}

func (e *containerFailure) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("container %s on node %s is %s", e.ID, e.Node, e.State)
	}
	return fmt.Sprintf("container %s on node %s is %s: %s", e.ID, e.Node, e.State, e.Message)
}

// blockingIndex returns the index to wait on next: the answer's, or 0 when
// the index went backwards (a snapshot restore), so that the next read
// answers at once.
func blockingIndex(prev uint64, qm *api.QueryMeta) uint64 {
	if qm == nil || qm.LastIndex < prev {
		return 0
	}
	return qm.LastIndex
}

// sleepBackoff waits d (doubled for next time, up to maxBackoff) or until ctx
// ends.
func sleepBackoff(ctx context.Context, d *time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*d):
	}
	*d = min(*d*2, maxBackoff)
	return nil
}

// waitRunning waits until container id is running: started and past its
// first health check. It returns the last container seen, also on error: a
// *containerFailure when its agent reported it failed (or stopped, unless
// fromStopped: a stopped container that its agent is about to start again),
// errGone when it left the registry, ctx's error on timeout.
func waitRunning(ctx context.Context, c *api.Client, id string, fromStopped bool) (*api.Container, error) {
	var index uint64
	var last *api.Container
	backoff := minBackoff
	for {
		ct, qm, err := c.Containers().Info(ctx, id, &api.QueryOptions{WaitIndex: index, WaitTime: blockWait})
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			if api.IsNotFound(err) {
				return last, errGone
			}
			if !api.IsRetryable(err) {
				return last, err
			}
			if err := sleepBackoff(ctx, &backoff); err != nil {
				return last, err
			}
			continue
		}
		backoff = minBackoff
		last = ct
		if ct.Desired == api.DesiredDeleted {
			return ct, errGone
		}
		if st := ct.Status; st != nil {
			switch st.State {
			case api.ContainerRunning:
				return ct, nil
			case api.ContainerStopped:
				if !fromStopped {
					return ct, &containerFailure{ID: ct.ID, Node: ct.Node, State: st.State, Message: st.Message}
				}
			case api.ContainerFailed, api.ContainerDraining:
				return ct, &containerFailure{ID: ct.ID, Node: ct.Node, State: st.State, Message: st.Message}
			}
		}
		index = blockingIndex(index, qm)
	}
}

// waitGone waits until container id has left the registry: its agent has
// drained and stopped it and the registry has reaped the record.
func waitGone(ctx context.Context, c *api.Client, id string) (*api.Container, error) {
	var index uint64
	var last *api.Container
	backoff := minBackoff
	for {
		ct, qm, err := c.Containers().Info(ctx, id, &api.QueryOptions{WaitIndex: index, WaitTime: blockWait})
		if err != nil {
			if api.IsNotFound(err) {
				return last, nil
			}
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			if !api.IsRetryable(err) {
				return last, err
			}
			if err := sleepBackoff(ctx, &backoff); err != nil {
				return last, err
			}
			continue
		}
		backoff = minBackoff
		last = ct
		index = blockingIndex(index, qm)
	}
}

// waitRetired waits until a version of a service is retired (or gone).
func waitRetired(ctx context.Context, c *api.Client, service, ver string) error {
	var index uint64
	backoff := minBackoff
	for {
		svc, qm, err := c.Services().Info(ctx, service, &api.QueryOptions{WaitIndex: index, WaitTime: blockWait})
		if err != nil {
			if api.IsNotFound(err) {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !api.IsRetryable(err) {
				return err
			}
			if err := sleepBackoff(ctx, &backoff); err != nil {
				return err
			}
			continue
		}
		backoff = minBackoff
		found := false
		for _, v := range svc.Versions {
			if v.Version != ver {
				continue
			}
			found = true
			switch v.State {
			case api.VersionRetired:
				return nil
			case api.VersionActive:
				return fmt.Errorf("version %s of service %q was declared again while it was retiring", ver, service)
			}
		}
		if !found {
			return nil
		}
		index = blockingIndex(index, qm)
	}
}

// waitErrText describes why a wait ended.
func waitErrText(c *Client, err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, errGone):
		return "it was deleted outside Terraform"
	}
	var cf *containerFailure
	if errors.As(err, &cf) {
		return cf.Error()
	}
	if _, ok := err.(*api.StatusError); ok || classify(err) != failOther {
		return explain(c, err)
	}
	return err.Error()
}
