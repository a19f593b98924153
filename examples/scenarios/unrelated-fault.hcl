# A fault far from the calls it must not excuse: audit runs alone on n-3
# and only the small ops cohort calls it; web calls greeter, which runs on
# n-1 and n-2 only. n-3 crashes and comes back, and audit's container is
# killed later. The fault windows excuse ops's calls that went to n-3 and
# nothing of web's: every failed call of web would be judged (sim's planted
# tests run this file with a gateway that fails greeter calls, and every
# one of those is a violation).
scenario "unrelated-fault" {
  description     = "n-3 (audit only) crashes and returns; web, on n-1 and n-2, is held to every invariant throughout"
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

service "audit" {
  version "1.0.0" {
    clients = ">= 1.0"
  }
}

containers "g" {
  count    = 4
  nodes    = ["n-1", "n-2"]
  services = ["greeter@1.0.0"]
}

containers "a" {
  count    = 1
  nodes    = ["n-3"]
  services = ["audit@1.0.0"]
}

cohort "web" {
  clients = 100
  version = "1.2.0"
  calls   = ["greeter"]
  rate    = 1
}

cohort "ops" {
  clients = 5
  version = "1.0.0"
  calls   = ["audit"]
  rate    = 1
}

step "20s" {
  crash_node { node = "n-3" }
}

step "30s" {
  restore_node { node = "n-3" }
}

step "45s" {
  crash_container { id = "a-1" }
}
