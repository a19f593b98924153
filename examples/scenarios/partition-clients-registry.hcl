# The web clients lose the registry while 1.1.0 is rolled out: their tables
# go stale, so they keep calling 1.0.0, which keeps running for them. When
# the partition heals they see 1.1.0 and move; only then is 1.0.0 retired.
scenario "partition-clients-registry" {
  description     = "web clients cut from the registry for 20s during an upgrade"
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
  clients = 80
  version = "1.2.0"
  calls   = ["greeter"]
  rate    = 0.5
}

cohort "ops" {
  clients = 20
  version = "1.2.0"
  calls   = ["greeter"]
  rate    = 0.5
}

step "15s" {
  partition {
    name = "web-registry"
    a    = ["cohort:web"]
    b    = ["registry"]
  }
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
  heal { name = "web-registry" }
}

step "45s" {
  retire_version {
    service = "greeter"
    version = "1.0.0"
  }
}
