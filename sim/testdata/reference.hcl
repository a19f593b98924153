# Every construct of the scenario language, with the defaults written out.
# sim's tests parse and run this file.

scenario "reference" {
  description     = "every block and attribute the simulator reads"
  duration        = "2m"    # default: last step + converge_within + 10s
  converge_within = "60s"   # bound from the last change (step or fault end) to convergence
  warmup          = "10s"   # when cohorts start calling, unless they say otherwise
  fault_settle    = "15s"   # how long after a fault failed calls are excused (default: derived)
}

network {
  latency      = "uniform(200us, 2ms)" # one way, per message
  loss         = 0                     # probability a connection attempt fails (retried)
  dial_timeout = "50ms"                # how long a failed attempt takes to fail
}

registry {
  commit_latency   = "uniform(2ms, 15ms)"
  publish_interval = "20ms"                # watchers get at most one answer per interval
  propagation      = "uniform(2ms, 50ms)"  # a client's delay, sampled once per client
  node_propagation = "uniform(2ms, 50ms)"  # an agent's delay, sampled once per node
  heartbeat_ttl    = "10s"
  retire_interval  = "1s"
}

agent {
  start_time               = "uniform(200ms, 1500ms)"
  health_delay             = "uniform(10ms, 200ms)"
  stop_time                = "uniform(5ms, 200ms)"
  service_time             = "uniform(1ms, 20ms)"
  start_timeout            = "30s"
  kill_timeout             = "5s"
  restart_delay            = "1s"
  restart_max_delay        = "30s"
  restart_attempts         = 5
  inflight_report_interval = "0s" # 0: in-flight counts are not reported for display
  heartbeat_interval       = "2s"
  reconcile_interval       = "1s"
  report_timeout           = "1s"
}

nodes {
  prefix = "n" # n-1, n-2, n-3
  count  = 3
}

node "edge-1" {}

service "frontend" {
  version "1.0.0" {
    clients       = ">= 1.0, < 2.0" # required
    service_time  = "exp(5ms)"      # a duration, uniform(lo, hi), exp(mean) or normal(mean, sd)
    fails_health  = false           # true: its containers never pass a health check
    crashes_after = "0s"            # its containers crash this long after each healthy start (0: never)
    calls         = ["orders"]      # serving a call calls these in turn
  }
}

service "orders" {
  version "1.0.0" {
    clients = ">= 1.0, < 2.0"
  }
}

release_set "r1" {
  members = ["frontend@1.0.0", "orders@1.0.0"]
}

container "edge" {
  node          = "edge-1"
  services      = ["frontend@1.0.0", "orders@1.0.0"]
  drain_timeout = "30s"
}

containers "app" { # app-1 … app-3, placed round robin
  count    = 3
  nodes    = ["n-1", "n-2", "n-3"] # default: every node
  services = ["frontend@1.0.0", "orders@1.0.0"]
}

cohort "web" {
  clients  = 100
  version  = "1.2.0"
  requires = { frontend = "~> 1.0" } # optional, per service
  calls    = ["frontend"]            # one picked at random per call
  rate     = 0.5                     # calls per second per client
  deadline = "2s"                    # the call and its retries
  on_nodes = false                   # true: clients live on the nodes (own-node preference)
  start    = "10s"
  # true: the scenario means no version to serve it; its failed calls are
  # judged, not unjudged, and no warning names it
  expect_unserved = false
}

step "20s" { # actions run in order
  declare_version {
    service = "frontend"
    version = "1.1.0"
    clients = ">= 1.0, < 2.0"
    calls   = ["orders"]
  }
  add_container {
    id       = "next-a"
    node     = "n-1"
    services = ["frontend@1.1.0", "orders@1.0.0"]
  }
  add_containers {
    prefix   = "next"
    count    = 2
    nodes    = ["n-2", "n-3"]
    services = ["frontend@1.1.0", "orders@1.0.0"]
  }
  set_rate {
    cohort = "web"
    rate   = 1
  }
  set_network {
    latency = "uniform(500us, 3ms)"
    loss    = 0.01
  }
}

step "30s" {
  move_cohort {
    cohort   = "web"
    version  = "1.3.0"
    fraction = 0.5 # or count = 50
  }
  partition {
    name = "p1"
    a    = ["cohort:web"] # registry, nodes, clients, node:ID or cohort:NAME
    b    = ["registry"]
  }
  crash_container { id = "app-1" }
}

step "40s" {
  heal { name = "p1" }
  lose_leader { for = "5s" }
  retire_version {
    service = "frontend"
    version = "1.0.0"
    force   = false # true: meant even if it leaves a cohort nothing to call
  }
}

step "50s" {
  crash_node { node = "n-2" }
  remove_container { id = "edge" }
  remove_containers {
    prefix = "app" # app-1 … app-3
    count  = 3
  }
}

step "60s" {
  restore_node { node = "n-2" }
}
