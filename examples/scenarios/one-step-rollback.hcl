# A rollback rolled back: under heavy load with long calls, greeter 1.1.0
# is retired (back to 1.0.0) and, half a second later, declared again.
# Whatever the retirement got to — gateways refusing new calls, containers
# draining with calls in flight — is undone: draining containers serve
# again, none is stopped with calls in flight, and none restarts unless it
# had already stopped. Clients retry refused calls on 1.0.0 meanwhile.
scenario "one-step-rollback" {
  description     = "retire 1.1.0 under load, then declare it again 500ms later"
  converge_within = "60s"
}

agent {
  service_time = "uniform(20ms, 400ms)"
}

nodes {
  prefix = "n"
  count  = 3
}

service "greeter" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
  version "1.1.0" {
    clients = ">= 1.0, < 2.0"
  }
}

containers "old" {
  count    = 3
  services = ["greeter@1.0.0"]
}

containers "new" {
  count         = 3
  services      = ["greeter@1.1.0"]
  drain_timeout = "20s"
}

cohort "web" {
  clients = 100
  version = "1.3.0"
  calls   = ["greeter"]
  rate    = 1.5
}

step "20s" {
  retire_version {
    service = "greeter"
    version = "1.1.0"
  }
}

step "20.5s" {
  declare_version {
    service = "greeter"
    version = "1.1.0"
    clients = ">= 1.0, < 2.0"
  }
}
