package main

import (
	"path/filepath"

	"github.com/coexist-dev/coexist/node/driver"
	"github.com/coexist-dev/coexist/node/image"
	"github.com/hashicorp/go-hclog"
)

// newDrivers makes the agent's drivers, by name: exec (the default) always,
// oci where runc is installed (docs/design.md §6). Each keeps its own
// directory under the data dir; both hand out ports from one pool of the
// agent's range, so that no two containers of the node get the same port.
func newDrivers(f *agentFlags, logger hclog.Logger) (*driver.Mux, error) {
	ports := driver.NewPorts(f.portMin, f.portMax)
	exec, err := driver.NewExec(driver.ExecConfig{DataDir: filepath.Join(f.dataDir, "containers"), Ports: ports,
		PortMin: f.portMin, PortMax: f.portMax, Logger: logger.Named("driver")})
	if err != nil {
		return nil, err
	}
	drivers := map[string]driver.Driver{"exec": exec}
	images, err := image.New(image.Config{Dir: filepath.Join(f.dataDir, "oci", "images"), Logger: logger})
	if err != nil {
		return nil, err
	}
	oci, err := driver.NewOCI(driver.OCIConfig{DataDir: filepath.Join(f.dataDir, "oci"), Images: images,
		Ports: ports, PortMin: f.portMin, PortMax: f.portMax, KillTimeout: f.killTimeout, Logger: logger.Named("oci")})
	if err != nil {
		logger.Warn("oci driver unavailable; containers with driver \"oci\" will fail to start", "error", err)
	} else {
		drivers["oci"] = oci
	}
	return driver.NewMux("exec", drivers)
}
