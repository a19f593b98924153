// Package driver runs containers on a node: the Driver interface the node
// agent programs against, the exec driver (Exec) that runs a container as a
// child process in its own process group, the oci driver (OCI) that runs one
// from an image with runc (oci.go), a Mux that picks one per container, and
// an in-memory fake (Fake) for the agent's unit tests.
//
// What it owns: starting, watching, signalling and stopping container
// processes; the port each container listens on; the per-container directory
// under the agent's data dir (handle.json, output.log) and the size cap of the
// log; re-adopting processes left running by a previous agent.
//
// What it does not do: decide what should run (package node plans), health
// checks, draining, or anything the registry knows. It is a leaf: it imports
// the standard library, golang.org/x/sys/unix, hclog and the OCI runtime
// spec's types only (images come through the ImageStore interface), and must never import
// the api, routing or registry packages, so that a driver can be reused and
// tested without the rest of the system. It logs through the hclog.Logger
// of its config, as the rest of coexist does, so that its warnings reach
// the agent's log.
//
// A container's process must outlive the agent: it gets its own process
// group, no parent-death signal, no context bound to the agent's life, and
// files (not pipes) for stdout and stderr. A restarted agent finds it again
// from handle.json, and trusts a pid only when /proc/<pid>/stat still shows
// the process start time recorded at start, so that a reused pid is never
// mistaken for the container.
//
// Watching: the driver's own child is reaped with waitpid, which gives its
// exit status; just before reaping (the child is then a zombie, so its pid and
// group id cannot be reused) what is left of its process group is killed. A
// re-adopted process is not our child: it is pinned with a pidfd where the
// kernel has them (Linux 5.3+) and watched by polling the pidfd for
// readability, else by reading /proc/<pid>/stat every 100ms; its exit status
// cannot be known (ExitCode -1, ErrExitUnknown).
//
// Logs: the child's stdout and stderr are one file, output.log, opened once
// with O_APPEND and handed over as both descriptors, so that the lines stay
// in the order the child wrote them (separate files would lose that order,
// and a pipe to sort them would tie the child to the agent). The child
// appends to it itself, so the cap is applied by a periodic check that cuts
// the file over LogMaxBytes down to its last half (see logs.go).
package driver
