# Agents see the registry seconds late — longer than a call's deadline —
# while greeter 1.1.0 is added, 1.0.0 retired and its containers removed.
# Clients learn of each change at once; the agents start the new containers,
# drain the retired version and stop the removed containers seconds later.
# Until an agent has seen the change its gateway admits by the older view:
# callers keep naming what they see active and compatible, and the
# containers they name keep serving until their own agent drains them.
scenario "agent-lag-upgrade" {
  description     = "agent watches 1-4s behind, deadline 1s, while 1.1.0 replaces 1.0.0"
  converge_within = "60s"
}

registry {
  propagation      = "uniform(10ms, 200ms)"
  node_propagation = "uniform(1s, 4s)"
}

nodes {
  prefix = "n"
  count  = 3
}

service "greeter" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}

containers "g1" {
  count    = 3
  services = ["greeter@1.0.0"]
}

cohort "web" {
  clients  = 100
  version  = "1.2.0"
  calls    = ["greeter"]
  rate     = 1
  deadline = "1s"
}

step "20s" {
  declare_version {
    service = "greeter"
    version = "1.1.0"
    clients = ">= 1.0, < 2.0"
  }
  add_containers {
    prefix   = "g2"
    count    = 3
    services = ["greeter@1.1.0"]
  }
}

step "35s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}

step "45s" {
  remove_containers {
    prefix = "g1"
    count  = 3
  }
}
