# A bad deploy: greeter 1.1.0 starts but never passes a health check. Its
# container is reported failed and never receives a call; 1.0.0 keeps
# serving. The operator then removes the container and retires 1.1.0.
scenario "bad-deploy" {
  description     = "1.1.0 fails its health checks; 1.0.0 keeps serving"
  converge_within = "60s"
}

nodes {
  prefix = "n"
  count  = 3
}

agent {
  start_timeout = "10s"
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
    service      = "greeter"
    version      = "1.1.0"
    clients      = ">= 1.0, < 2.0"
    fails_health = true
  }
  add_containers {
    prefix   = "bad"
    count    = 2
    nodes    = ["n-1", "n-2"]
    services = ["greeter@1.1.0"]
  }
}

step "45s" {
  remove_containers {
    prefix = "bad"
    count  = 2
  }
  retire_version {
    service = "greeter"
    version = "1.1.0"
  }
}
