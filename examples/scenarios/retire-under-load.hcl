# Retire under load: every client calls greeter 1.1.0, hard and with long
# calls, when 1.1.0 is retired (a rollback to 1.0.0, which still runs).
# Gateways refuse new calls to the draining 1.1.0 as safe to retry, clients
# retry on 1.0.0, the calls in flight finish, and only then do the 1.1.0
# containers stop. Later 1.1.0 is declared again: its containers start
# again, because their desired state changed.
scenario "retire-under-load" {
  description     = "retire the version carrying the load; nothing in flight is cut"
  converge_within = "60s"
}

nodes {
  prefix = "n"
  count  = 3
}

agent {
  service_time = "uniform(20ms, 250ms)"
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
  rate    = 1
}

step "20s" {
  retire_version {
    service = "greeter"
    version = "1.1.0"
  }
}

step "40s" {
  declare_version {
    service = "greeter"
    version = "1.1.0"
    clients = ">= 1.0, < 2.0"
  }
}
