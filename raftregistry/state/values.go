package state

// The values of the records' enumerated fields as the Raft log and the
// snapshots hold them. They are the store's own, not api's: convert.go maps
// them to and from the wire explicitly, so that renaming a value on the wire
// never changes what is persisted (docs/design.md §3).
// TestPersistedForm pins them.

// Node.Status.
const (
	NodeReady = "ready"
	NodeDown  = "down"
)

// ServiceVersion.State.
const (
	VersionActive   = "active"
	VersionDraining = "draining"
	VersionRetired  = "retired"
)

// Container.Desired.
const (
	DesiredPresent = "present"
	DesiredDeleted = "deleted"
)

// ContainerStatus.State.
const (
	ContainerStarting = "starting"
	ContainerRunning  = "running"
	ContainerDraining = "draining"
	ContainerStopped  = "stopped"
	ContainerFailed   = "failed"
)

// ServiceStatus.State.
const (
	ServiceServing  = "serving"
	ServiceDraining = "draining"
	ServiceDrained  = "drained"
)

// Token.Role.
const (
	RoleManagement = "management"
	RoleOperator   = "operator"
	RoleAgent      = "agent"
	RoleRead       = "read"
)
