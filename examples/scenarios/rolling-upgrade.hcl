# Rolling upgrade: greeter 1.0.0 is replaced by 1.1.0 one container at a
# time. Each new container starts beside the old one (make before break);
# clients move to 1.1.0 as soon as one of its containers is running, and
# every 1.0.0 container is drained before it stops.
scenario "rolling-upgrade" {
  description     = "replace greeter 1.0.0 by 1.1.0, one container at a time"
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
  add_container {
    id       = "g2-1"
    node     = "n-1"
    services = ["greeter@1.1.0"]
  }
}

step "26s" {
  remove_container { id = "g1-1" }
  add_container {
    id       = "g2-2"
    node     = "n-2"
    services = ["greeter@1.1.0"]
  }
}

step "32s" {
  remove_container { id = "g1-2" }
  add_container {
    id       = "g2-3"
    node     = "n-3"
    services = ["greeter@1.1.0"]
  }
}

step "38s" {
  remove_container { id = "g1-3" }
}

step "44s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}
