package state

import (
	"fmt"
	"strings"
	"time"

	"github.com/coexist-dev/coexist/api"
)

// Defaults applied to a declared container, so that a spec written with and
// without them compares equal.
const (
	DefaultDriver         = "exec"
	DefaultDrainTimeout   = 30 * time.Second
	DefaultHealthInterval = time.Second
	DefaultHealthTimeout  = time.Second
	MaxDrainTimeout       = 24 * time.Hour
	maxDescription        = 1024
	maxLabels             = 64
	maxArgs               = 256
	maxEnv                = 256
	maxMessage            = 4096
)

// MaxRestartAttempts bounds restart.attempts (restarts within the policy's
// interval); agents keep as many exits as it allows.
const MaxRestartAttempts = 1000

// Drivers the registry accepts.
var knownDrivers = map[string]bool{"exec": true, "oci": true}

// The rules for names, versions and ranges are the wire rules of package api
// (api.CheckName, api.CheckVersion, api.CheckRange), so that the HTTP API,
// the gateway, the SDK and the provider accept the same values.
//
// Two sets of rules apply. What the HTTP API accepts (wireRules) has
// tightened over time: versions must be canonical, ranges satisfiable. The
// apply of a logged command must not tighten (logRules): a server that
// replays its log after an upgrade must reach the state the other servers
// reached when they applied the same entries with the old code. So apply
// checks only what every release checked, and records written before the
// rules tightened ("1.0", ">= 2.0, < 1.0") keep working.
type rules struct {
	version func(string) error
	rng     func(string) error
}

var (
	wireRules = rules{version: api.CheckVersion, rng: api.CheckRange}
	logRules  = rules{version: api.CheckVersionSyntax, rng: api.CheckRangeSyntax}
)

// ValidateName checks a name: lowercase letters, digits and dashes, starting
// with a letter or digit, at most 63 characters.
func ValidateName(field, s string) error {
	return fieldOf(field, api.CheckName(s))
}

// ValidateVersion checks a version: it must be written canonically
// ("1.4.2", not "1.4" or "v1.4.2").
func ValidateVersion(field, s string) error {
	return fieldOf(field, api.CheckVersion(s))
}

// ValidateConstraint checks a version range such as ">= 1.0, < 2.0": it
// must parse and admit at least one version.
func ValidateConstraint(field, s string) error {
	return fieldOf(field, api.CheckRange(s))
}

// fieldOf names the field a wire rule refused.
func fieldOf(field string, err error) error {
	if err == nil {
		return nil
	}
	return invalid(field, "%s", err.Error())
}

// ValidateDeclareVersion checks a DeclareVersion command's input against the
// wire rules.
func ValidateDeclareVersion(c *DeclareVersion) error {
	return validateDeclareVersion(c, wireRules)
}

func validateDeclareVersion(c *DeclareVersion, r rules) error {
	if err := ValidateName("service", c.Service); err != nil {
		return err
	}
	if err := fieldOf("version", r.version(c.Version)); err != nil {
		return err
	}
	if err := fieldOf("clients", r.rng(c.Clients)); err != nil {
		return err
	}
	if len(c.Description) > maxDescription {
		return invalid("description", "is longer than %d characters", maxDescription)
	}
	return nil
}

// SpecFromAPI turns a declared container into its persisted spec, with the
// defaults filled in.
func SpecFromAPI(r *api.ContainerRequest) ContainerSpec {
	s := ContainerSpec{
		Name:         r.Name,
		Node:         r.Node,
		Driver:       r.Driver,
		Command:      r.Config.Command,
		Image:        r.Config.Image,
		Args:         r.Config.Args,
		Env:          r.Config.Env,
		DrainTimeout: r.DrainTimeout.Std(),
	}
	if s.Driver == "" {
		s.Driver = DefaultDriver
	}
	if s.DrainTimeout == 0 {
		s.DrainTimeout = DefaultDrainTimeout
	}
	if len(s.Args) == 0 {
		s.Args = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	for _, ref := range r.Services {
		s.Services = append(s.Services, VersionKey{Service: ref.Service, Version: ref.Version})
	}
	if r.Health != nil {
		h := HealthCheck{HTTP: r.Health.HTTP, TCP: r.Health.TCP, Interval: r.Health.Interval.Std(), Timeout: r.Health.Timeout.Std()}
		if h.Interval == 0 {
			h.Interval = DefaultHealthInterval
		}
		if h.Timeout == 0 {
			h.Timeout = DefaultHealthTimeout
		}
		if h.HTTP == "" {
			h.TCP = true
		}
		s.Health = &h
	}
	if r.Resources != nil && (r.Resources.Memory != "" || r.Resources.CPU != "") {
		s.Resources = &Resources{Memory: r.Resources.Memory, CPU: r.Resources.CPU}
	}
	if r.Restart != nil {
		p := RestartPolicy{Attempts: r.Restart.Attempts, Interval: r.Restart.Interval.Std(),
			Delay: r.Restart.Delay.Std(), MaxDelay: r.Restart.MaxDelay.Std()}
		s.Restart = &p
	}
	return s
}

// ValidateContainer checks a container's id and spec on their own against
// the wire rules; whether its node and versions exist is checked when the
// command is applied.
func ValidateContainer(id string, s *ContainerSpec) error {
	return validateContainer(id, s, wireRules)
}

func validateContainer(id string, s *ContainerSpec, r rules) error {
	if err := ValidateName("id", id); err != nil {
		return err
	}
	if s.Name != "" {
		if err := ValidateName("name", s.Name); err != nil {
			return err
		}
	}
	if err := ValidateName("node", s.Node); err != nil {
		return err
	}
	if len(s.Services) == 0 {
		return invalid("services", "must name at least one service version")
	}
	seen := make(map[string]int, len(s.Services))
	for i, ref := range s.Services {
		if err := ValidateName(fmt.Sprintf("services[%d].service", i), ref.Service); err != nil {
			return err
		}
		if err := fieldOf(fmt.Sprintf("services[%d].version", i), r.version(ref.Version)); err != nil {
			return err
		}
		if j, dup := seen[ref.Service]; dup {
			return invalid(fmt.Sprintf("services[%d].service", i), "service %q is already held by services[%d]: a container holds at most one version per service", ref.Service, j)
		}
		seen[ref.Service] = i
	}
	if err := validateRun(s); err != nil {
		return err
	}
	if len(s.Args) > maxArgs {
		return invalid("config.args", "has more than %d entries", maxArgs)
	}
	if len(s.Env) > maxEnv {
		return invalid("config.env", "has more than %d entries", maxEnv)
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return invalid("config.env", "%q is not a valid variable name", k)
		}
	}
	if s.Health != nil {
		h := s.Health
		if h.HTTP != "" && !strings.HasPrefix(h.HTTP, "/") {
			return invalid("health.http", "%q must be a path starting with /", h.HTTP)
		}
		if h.Interval < 0 || h.Interval > time.Hour {
			return invalid("health.interval", "must be between 0 and 1h, got %s", h.Interval)
		}
		if h.Timeout < 0 || h.Timeout > time.Hour {
			return invalid("health.timeout", "must be between 0 and 1h, got %s", h.Timeout)
		}
	}
	if p := s.Restart; p != nil {
		if p.Attempts < 0 || p.Attempts > MaxRestartAttempts {
			return invalid("restart.attempts", "must be between 0 and %d (0: the agent's default), got %d", MaxRestartAttempts, p.Attempts)
		}
		for _, d := range []struct {
			field, most string
			v, max      time.Duration
		}{
			{"restart.interval", "24h", p.Interval, 24 * time.Hour},
			{"restart.delay", "1h", p.Delay, time.Hour},
			{"restart.max_delay", "1h", p.MaxDelay, time.Hour},
		} {
			if d.v < 0 || d.v > d.max {
				return invalid(d.field, "must be between 0 and %s (0: the agent's default), got %s", d.most, d.v)
			}
		}
		if p.MaxDelay > 0 && p.Delay > p.MaxDelay {
			return invalid("restart.max_delay", "must not be shorter than restart.delay (%s), got %s", p.Delay, p.MaxDelay)
		}
	}
	if s.DrainTimeout < 0 || s.DrainTimeout > MaxDrainTimeout {
		return invalid("drain_timeout", "must be between 0 and %s, got %s", MaxDrainTimeout, s.DrainTimeout)
	}
	return nil
}

var validContainerStates = map[string]bool{
	ContainerStarting: true, ContainerRunning: true, ContainerDraining: true,
	ContainerStopped: true, ContainerFailed: true,
}

var validServiceStates = map[string]bool{
	ServiceServing: true, ServiceDraining: true, ServiceDrained: true,
}

// ValidateStatus checks an agent's report.
func ValidateStatus(s *ContainerStatus) error {
	if !validContainerStates[s.State] {
		return invalid("state", "%q is not one of starting, running, draining, stopped, failed", s.State)
	}
	if len(s.Message) > maxMessage {
		return invalid("message", "is longer than %d characters", maxMessage)
	}
	for i, ss := range s.Services {
		if !validServiceStates[ss.State] {
			return invalid(fmt.Sprintf("services[%d].state", i), "%q is not one of serving, draining, drained", ss.State)
		}
		if ss.Inflight < 0 {
			return invalid(fmt.Sprintf("services[%d].inflight", i), "must not be negative")
		}
		if ss.CallsPerMinute < 0 {
			return invalid(fmt.Sprintf("services[%d].calls_per_minute", i), "must not be negative")
		}
	}
	return nil
}

// ValidateNode checks a node registration.
func ValidateNode(c *RegisterNode) error {
	if err := ValidateName("id", c.ID); err != nil {
		return err
	}
	if c.Gateway == "" {
		return invalid("gateway", "must not be empty")
	}
	if len(c.Labels) > maxLabels {
		return invalid("labels", "has more than %d entries", maxLabels)
	}
	return nil
}

// ValidateToken checks a token creation.
func ValidateToken(c *CreateToken) error {
	switch c.Role {
	case RoleManagement, RoleOperator, RoleRead:
		if c.Node != "" {
			return invalid("node", "is only allowed with the agent role")
		}
	case RoleAgent:
		if err := ValidateName("node", c.Node); err != nil {
			return err
		}
	default:
		return invalid("role", "%q is not one of management, operator, agent, read", c.Role)
	}
	if len(c.Description) > maxDescription {
		return invalid("description", "is longer than %d characters", maxDescription)
	}
	return nil
}

// validateRun checks what a container runs against its driver
// (docs/design.md §6): exec runs a command and applies no limits; oci runs an
// image, with limits from resources.
func validateRun(s *ContainerSpec) error {
	switch s.Driver {
	case "exec":
		if strings.TrimSpace(s.Command) == "" {
			return invalid("config.command", "must not be empty")
		}
		if s.Image != "" {
			return invalid("config.image", "is for the oci driver; the exec driver runs config.command")
		}
		if s.Resources != nil {
			return invalid("resources", "the exec driver applies no resource limits; use driver \"oci\"")
		}
	case "oci":
		if strings.TrimSpace(s.Image) == "" {
			return invalid("config.image", "must not be empty for the oci driver")
		}
		if len(s.Image) > 4096 || strings.ContainsAny(s.Image, "\x00\n") {
			return invalid("config.image", "%q is not an image reference", s.Image)
		}
	default:
		return invalid("driver", "unknown driver %q (known: exec, oci)", s.Driver)
	}
	if r := s.Resources; r != nil {
		if r.Memory != "" {
			if _, err := api.ParseMemory(r.Memory); err != nil {
				return invalid("resources.memory", "%s", err.Error())
			}
		}
		if r.CPU != "" {
			if _, err := api.ParseCPU(r.CPU); err != nil {
				return invalid("resources.cpu", "%s", err.Error())
			}
		}
	}
	return nil
}
