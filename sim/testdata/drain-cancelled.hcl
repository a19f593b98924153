# Not an example: a reproduction of a reconciler bug the simulator found.
# greeter 1.0.0 is retired while legacy clients (which have nothing else)
# keep it busy; after its drain timeout it is retired and its containers
# start draining with calls in flight; then 1.0.0 is declared again (a
# rollback). reconcile.Plan leaves a container that is wanted again while
# draining in PhaseDraining ("it never stopped, so it serves again"), but
# nothing returns it to running: it is reported draining, never routable and
# never stopped, and the run does not converge.
#
#   coexist sim run sim/testdata/drain-cancelled.hcl --seed 1
scenario "drain-cancelled" {
  converge_within = "60s"
}
nodes {
  prefix = "n"
  count  = 2
}
agent {
  service_time = "uniform(1s, 2s)"
}
service "greeter" {
  version "1.0.0" {
    clients = ">= 0.9, < 2.0"
  }
}
containers "g1" {
  count         = 2
  services      = ["greeter@1.0.0"]
  drain_timeout = "5s"
}
cohort "legacy" {
  clients = 50
  version = "0.9.0"
  calls   = ["greeter"]
  rate    = 2
  deadline = "5s"
}
step "20s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}
step "26s" {
  declare_version {
    service = "greeter"
    version = "1.0.0"
    clients = ">= 0.9, < 2.0"
  }
}
