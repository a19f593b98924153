package node

import (
	"fmt"

	"github.com/coexist-dev/coexist/api"
	"github.com/coexist-dev/coexist/node/driver"
)

// specOf is what the driver runs for container c: its driver, command or
// image, and its resources parsed (docs/design.md §6).
func specOf(nodeID string, c *api.Container) (driver.Spec, error) {
	spec := driver.Spec{ID: c.ID, NodeID: nodeID, Services: servicesEnv(c), Driver: c.Driver,
		Command: c.Config.Command, Image: c.Config.Image, Args: c.Config.Args, Env: c.Config.Env}
	if r := c.Resources; r != nil {
		if r.Memory != "" {
			m, err := api.ParseMemory(r.Memory)
			if err != nil {
				return spec, fmt.Errorf("%w: resources.memory: %w", driver.ErrInvalidSpec, err)
			}
			spec.Resources.MemoryBytes = m
		}
		if r.CPU != "" {
			cpu, err := api.ParseCPU(r.CPU)
			if err != nil {
				return spec, fmt.Errorf("%w: resources.cpu: %w", driver.ErrInvalidSpec, err)
			}
			spec.Resources.CPU = cpu
		}
	}
	return spec, nil
}
