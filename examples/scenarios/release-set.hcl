# A three-service release set: frontend calls orders, which calls payments.
# Each release runs as one container holding all three versions, and each
# version admits only callers of its own release, so a call chain that
# starts in release 2 stays in release 2, while release 1 drains away.
scenario "release-set" {
  description     = "frontend -> orders -> payments upgraded as one release set"
  converge_within = "60s"
}

nodes {
  prefix = "n"
  count  = 3
}

service "frontend" {
  version "1.0.0" {
    clients = ">= 1.0, < 3.0"
    calls   = ["orders"]
  }
}

service "orders" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
    calls   = ["payments"]
  }
}

service "payments" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}

release_set "r1" {
  members = ["frontend@1.0.0", "orders@1.0.0", "payments@1.0.0"]
}

release_set "r2" {
  members = ["frontend@2.0.0", "orders@2.0.0", "payments@2.0.0"]
}

containers "r1" {
  count    = 3
  services = ["frontend@1.0.0", "orders@1.0.0", "payments@1.0.0"]
}

cohort "web" {
  clients = 80
  version = "1.5.0"
  calls   = ["frontend"]
  rate    = 0.5
}

step "20s" {
  declare_version {
    service = "payments"
    version = "2.0.0"
    clients = ">= 2.0, < 3.0"
  }
  declare_version {
    service = "orders"
    version = "2.0.0"
    clients = ">= 2.0, < 3.0"
    calls   = ["payments"]
  }
  declare_version {
    service = "frontend"
    version = "2.0.0"
    clients = ">= 1.0, < 3.0"
    calls   = ["orders"]
  }
  add_containers {
    prefix   = "r2"
    count    = 3
    services = ["frontend@2.0.0", "orders@2.0.0", "payments@2.0.0"]
  }
}

step "40s" {
  retire_version {
    service = "frontend"
    version = "1.0.0"
  }
  retire_version {
    service = "orders"
    version = "1.0.0"
  }
  retire_version {
    service = "payments"
    version = "1.0.0"
  }
}
