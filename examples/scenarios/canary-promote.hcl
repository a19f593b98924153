# Canary, then promote: greeter 1.1.0 is first declared for the canary
# clients only (1.5 and later), runs beside 1.0.0 for a while, then is
# declared again with the full range, which moves every client to it without
# restarting anything. 1.0.0 is retired last.
scenario "canary-promote" {
  description     = "1.1.0 serves a canary cohort first, then everyone"
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

containers "stable" {
  count    = 3
  services = ["greeter@1.0.0"]
}

cohort "web" {
  clients = 80
  version = "1.2.0"
  calls   = ["greeter"]
  rate    = 0.5
}

cohort "canary" {
  clients = 20
  version = "1.5.0"
  calls   = ["greeter"]
  rate    = 0.5
}

step "20s" {
  declare_version {
    service = "greeter"
    version = "1.1.0"
    clients = ">= 1.5, < 2.0"
  }
  add_containers {
    prefix   = "canary"
    count    = 1
    nodes    = ["n-1"]
    services = ["greeter@1.1.0"]
  }
}

# Promote: the same version, a wider range; then the capacity follows.
step "40s" {
  declare_version {
    service = "greeter"
    version = "1.1.0"
    clients = ">= 1.0, < 2.0"
  }
  add_containers {
    prefix   = "next"
    count    = 2
    nodes    = ["n-2", "n-3"]
    services = ["greeter@1.1.0"]
  }
}

step "55s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}

step "60s" {
  remove_containers {
    prefix = "stable"
    count  = 3
  }
}
