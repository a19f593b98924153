# greeter 1.0.0 first admits every client from 1.0 up to 3.0. Then 2.0.0 is
# added for the 2.x clients and, two seconds later, 1.0.0's range is
# narrowed to 1.x. Clients see the registry up to 2 s late: some still name
# 1.0.0 containers for a 2.x caller after gateways have the narrower range,
# and are refused (safe to retry) and go to 2.0.0. No call fails. Every
# call is checked against the ranges in force when it began; the 1.x cohort
# never notices.
scenario "range-narrowing" {
  description     = "1.0.0's clients range narrowed from < 3.0 to < 2.0 once 2.0.0 serves the 2.x clients"
  converge_within = "60s"
}

registry {
  propagation = "uniform(10ms, 2s)"
}

nodes {
  prefix = "n"
  count  = 3
}

service "greeter" {
  version "1.0.0" {
    clients = ">= 1.0, < 3.0"
  }
}

containers "g1" {
  count    = 3
  services = ["greeter@1.0.0"]
}

cohort "web" {
  clients = 60
  version = "1.4.0"
  calls   = ["greeter"]
  rate    = 1
}

cohort "app" {
  clients = 60
  version = "2.1.0"
  calls   = ["greeter"]
  rate    = 1
}

step "20s" {
  declare_version {
    service = "greeter"
    version = "2.0.0"
    clients = ">= 2.0, < 3.0"
  }
  add_containers {
    prefix   = "g2"
    count    = 3
    services = ["greeter@2.0.0"]
  }
}

step "22s" {
  declare_version {
    service = "greeter"
    version = "1.0.0"
    clients = ">= 1.0, < 2.0"
  }
}
