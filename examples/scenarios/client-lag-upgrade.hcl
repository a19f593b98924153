# Clients and agents see the registry seconds late — longer than a call's
# deadline — while greeter 1.1.0 is added beside 1.0.0. For seconds the
# gateways already know 1.1.0 and many clients do not: those clients keep
# naming the 1.0.0 containers, which are active and compatible, and the
# gateways serve them (docs/design.md §4: the gateway admits, it does not
# choose again). No call fails and no fault excuses anything.
scenario "client-lag-upgrade" {
  description     = "client watches 1-4s behind, deadline 1s, while 1.1.0 is added and 1.0.0 retired"
  converge_within = "60s"
}

registry {
  propagation      = "uniform(1s, 4s)"
  node_propagation = "uniform(10ms, 500ms)"
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

step "40s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}
