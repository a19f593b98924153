# Client cohorts upgrading in waves: api 2.0.0 serves clients from 1.5 on;
# the web cohort moves from 1.4 to 2.0 a quarter at a time, and each wave
# routes to 2.0.0 at once. The batch cohort requires api ~> 1.0, so it stays
# on 1.0.0 although 2.0.0 admits its version: both versions keep running.
scenario "cohort-waves" {
  description     = "web clients move to 2.0 in four waves; batch clients pin api ~> 1.0"
  converge_within = "60s"
}

nodes {
  prefix = "n"
  count  = 3
}

service "api" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}

containers "api1" {
  count    = 3
  services = ["api@1.0.0"]
}

cohort "web" {
  clients = 120
  version = "1.4.0"
  calls   = ["api"]
  rate    = 0.5
}

cohort "batch" {
  clients  = 30
  version  = "1.8.0"
  requires = { api = "~> 1.0" }
  calls    = ["api"]
  rate     = 0.5
}

# A lossier network from the start of the waves: connection attempts that
# fail are retried on another container.
step "12s" {
  set_network {
    latency = "uniform(500us, 5ms)"
    loss    = 0.02
  }
}

step "15s" {
  declare_version {
    service = "api"
    version = "2.0.0"
    clients = ">= 1.5, < 3.0"
  }
  add_containers {
    prefix   = "api2"
    count    = 3
    services = ["api@2.0.0"]
  }
}

step "30s" {
  move_cohort {
    cohort   = "web"
    version  = "2.0.0"
    fraction = 0.25
  }
}

step "38s" {
  move_cohort {
    cohort   = "web"
    version  = "2.0.0"
    fraction = 0.25
  }
}

step "46s" {
  move_cohort {
    cohort   = "web"
    version  = "2.0.0"
    fraction = 0.25
  }
}

step "54s" {
  move_cohort {
    cohort   = "web"
    version  = "2.0.0"
    fraction = 0.25
  }
}
