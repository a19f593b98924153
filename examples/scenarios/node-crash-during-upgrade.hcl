# A node crashes in the middle of an upgrade and comes back later. Calls in
# flight on it fail (the fault's window excuses them); clients stop choosing
# it once the registry marks it down; when it is back, its agent finds its
# containers dead and starts them again. Later one container's process is
# killed, and its agent restarts it. Nothing else restarts.
scenario "node-crash-during-upgrade" {
  description     = "n-2 crashes while 1.1.0 rolls out, and returns 20s later"
  converge_within = "60s"
}

nodes {
  prefix = "n"
  count  = 4
}

service "greeter" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}

containers "g1" {
  count    = 4
  services = ["greeter@1.0.0"]
}

cohort "web" {
  clients = 100
  version = "1.2.0"
  calls   = ["greeter"]
  rate    = 0.5
}

step "20s" {
  declare_version {
    service = "greeter"
    version = "1.1.0"
    clients = ">= 1.0, < 2.0"
  }
  add_containers {
    prefix   = "g2"
    count    = 4
    services = ["greeter@1.1.0"]
  }
}

step "22s" {
  crash_node { node = "n-2" }
}

step "35s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}

step "42s" {
  restore_node { node = "n-2" }
}

step "50s" {
  crash_container { id = "g2-1" }
}
