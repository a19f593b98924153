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

// waitConfig is the blocking-query loop of every wait (api.WaitUntil).
var waitConfig = api.WatchConfig{WaitTime: blockWait, MinBackoff: minBackoff, MaxBackoff: maxBackoff}

// waitRunning waits until container id is running: started and past its
// first health check. It returns the last container seen, also on error: a
// *containerFailure when its agent reported it failed (or stopped, unless
// fromStopped: a stopped container that its agent is about to start again),
// errGone when it left the registry, ctx's error on timeout.
func waitRunning(ctx context.Context, c *api.Client, id string, fromStopped bool) (*api.Container, error) {
	var last *api.Container
	err := api.WaitUntil(ctx, waitConfig, containerInfo(c, id), func(ct *api.Container, err error) (bool, error) {
		switch {
		case api.IsNotFound(err):
			return true, errGone
		case err != nil:
			return true, err
		}
		last = ct
		if ct.Desired == api.DesiredDeleted {
			return true, errGone
		}
		if st := ct.Status; st != nil {
			switch st.State {
			case api.ContainerRunning:
				return true, nil
			case api.ContainerStopped:
				if !fromStopped {
					return true, &containerFailure{ID: ct.ID, Node: ct.Node, State: st.State, Message: st.Message}
				}
			case api.ContainerFailed, api.ContainerDraining:
				return true, &containerFailure{ID: ct.ID, Node: ct.Node, State: st.State, Message: st.Message}
			}
		}
		return false, nil
	})
	return last, err
}

// waitGone waits until container id has left the registry: its agent has
// drained and stopped it and the registry has reaped the record.
func waitGone(ctx context.Context, c *api.Client, id string) (*api.Container, error) {
	var last *api.Container
	err := api.WaitUntil(ctx, waitConfig, containerInfo(c, id), func(ct *api.Container, err error) (bool, error) {
		switch {
		case api.IsNotFound(err):
			return true, nil
		case err != nil:
			return true, err
		}
		last = ct
		return false, nil
	})
	return last, err
}

// containerInfo is the blocking read of container id.
func containerInfo(c *api.Client, id string) func(context.Context, *api.QueryOptions) (*api.Container, *api.QueryMeta, error) {
	return func(ctx context.Context, q *api.QueryOptions) (*api.Container, *api.QueryMeta, error) {
		return c.Containers().Info(ctx, id, q)
	}
}

// waitRetired waits until a version of a service is retired (or gone).
func waitRetired(ctx context.Context, c *api.Client, service, ver string) error {
	return api.WaitUntil(ctx, waitConfig, func(ctx context.Context, q *api.QueryOptions) (*api.Service, *api.QueryMeta, error) {
		return c.Services().Info(ctx, service, q)
	}, func(svc *api.Service, err error) (bool, error) {
		switch {
		case api.IsNotFound(err):
			return true, nil
		case err != nil:
			return true, err
		}
		for _, v := range svc.Versions {
			if v.Version != ver {
				continue
			}
			switch v.State {
			case api.VersionRetired:
				return true, nil
			case api.VersionActive:
				return true, fmt.Errorf("version %s of service %q was declared again while it was retiring", ver, service)
			}
			return false, nil
		}
		return true, nil // gone
	})
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
