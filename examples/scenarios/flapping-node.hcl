# A flapping node: n-2 crashes and comes back three times, four seconds
# apart; then n-3 loses the registry three times, for three seconds each.
# Calls that went to n-2 while it was down, or that n-3's stale view
# touched, are excused by their fault's window; every other call is held to
# the invariants. Containers restart only after the crashes; the fleet
# settles once the node stops flapping.
scenario "flapping-node" {
  description     = "n-2 crashes and returns three times; n-3 is cut from the registry three times"
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
  rate    = 1
}

step "20s" {
  crash_node { node = "n-2" }
}

step "24s" {
  restore_node { node = "n-2" }
}

step "28s" {
  crash_node { node = "n-2" }
}

step "32s" {
  restore_node { node = "n-2" }
}

step "36s" {
  crash_node { node = "n-2" }
}

step "40s" {
  restore_node { node = "n-2" }
}

step "45s" {
  partition {
    name = "flap-1"
    a    = ["node:n-3"]
    b    = ["registry"]
  }
}

step "48s" {
  heal { name = "flap-1" }
}

step "51s" {
  partition {
    name = "flap-2"
    a    = ["node:n-3"]
    b    = ["registry"]
  }
}

step "54s" {
  heal { name = "flap-2" }
}

step "57s" {
  partition {
    name = "flap-3"
    a    = ["node:n-3"]
    b    = ["registry"]
  }
}

step "60s" {
  heal { name = "flap-3" }
}
