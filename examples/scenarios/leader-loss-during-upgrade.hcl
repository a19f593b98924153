# The registry loses its leader while an upgrade is under way: writes stall
# (the new containers stay "starting" in the registry) and commit once a new
# leader is elected. Routing needs no leader: calls keep flowing on the
# tables clients have, and none fails. The retire comes after the new
# leader has heard from every server: before, 1.1.0 is not running in the
# registry, and retiring 1.0.0 would strand web (the registry refuses it).
scenario "leader-loss-during-upgrade" {
  description     = "no registry leader for 8s while 1.1.0 is added, then 1.0.0 retired"
  converge_within = "60s"
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
    count    = 3
    services = ["greeter@1.1.0"]
  }
}

step "20.1s" {
  lose_leader { for = "8s" }
}

step "30s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}
