# greeter 1.1.0 passes its health checks, then its process crashes two
# seconds later, every time. Its agents restart it with growing delays
# until the restarts are used up, then report it failed for good. Calls in
# flight on a crashing container fail and its fault window excuses them;
# clients go to 1.1.0 while it is healthy and back to 1.0.0, which keeps
# serving throughout.
scenario "crash-loop-gives-up" {
  description     = "1.1.0 crashes 2s after each healthy start until restarts are used up: failed for good"
  converge_within = "60s"
}

agent {
  restart_delay    = "500ms"
  restart_attempts = 3
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
  clients = 100
  version = "1.2.0"
  calls   = ["greeter"]
  rate    = 1
}

step "20s" {
  declare_version {
    service       = "greeter"
    version       = "1.1.0"
    clients       = ">= 1.0, < 2.0"
    crashes_after = "2s"
  }
  add_containers {
    prefix   = "g2"
    count    = 3
    services = ["greeter@1.1.0"]
  }
}
