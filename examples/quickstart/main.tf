# greeter 1.x and 2.x coexist: each major version in its own container, and
# every call is routed to the version whose client range admits the caller.

data "coexist_nodes" "ready" {
  status = "ready"

  lifecycle {
    postcondition {
      condition     = length(self.nodes) > 0
      error_message = "No ready node: start an agent first, e.g. `coexist agent --dev`."
    }
  }
}

locals {
  node = data.coexist_nodes.ready.nodes[0].id
}

resource "coexist_service_version" "greeter_1" {
  service     = "greeter"
  version     = var.greeter_1_version
  clients     = ">= 1.0, < 2.0"
  description = "greeter 1.x: plain-text greetings"

  lifecycle {
    create_before_destroy = true
  }
}

resource "coexist_service_version" "greeter_2" {
  service     = "greeter"
  version     = "2.0.0"
  clients     = ">= 2.0, < 3.0"
  description = "greeter 2.x: JSON greetings"

  lifecycle {
    create_before_destroy = true
  }
}

resource "coexist_container" "greeter_1" {
  name = "greeter-1"
  node = local.node
  services = [{
    service = coexist_service_version.greeter_1.service
    version = coexist_service_version.greeter_1.version
  }]
  config = {
    command = var.greeter_command
    args    = ["--version", coexist_service_version.greeter_1.version]
  }
  health = {
    http     = "/healthz"
    interval = "500ms"
  }
  drain_timeout = "10s"

  # A new greeter_1_version replaces this container: the new one runs and is
  # healthy before the old one drains.
  lifecycle {
    create_before_destroy = true
  }
}

resource "coexist_container" "greeter_2" {
  name = "greeter-2"
  node = local.node
  services = [{
    service = coexist_service_version.greeter_2.service
    version = coexist_service_version.greeter_2.version
  }]
  config = {
    command = var.greeter_command
    args    = ["--version", coexist_service_version.greeter_2.version]
  }
  health = {
    http     = "/healthz"
    interval = "500ms"
  }
  drain_timeout = "10s"

  lifecycle {
    create_before_destroy = true
  }
}

# Where a 1.3 and a 2.1 client of greeter go, once both containers run. With
# no compatible version a route reads as version = null and says why in
# `reason`; it does not fail, so that it never blocks the apply that brings a
# version back (e.g. after a version was retired outside Terraform).
data "coexist_route" "client_1" {
  service        = "greeter"
  client_name    = "quickstart"
  client_version = "1.3.0"
  depends_on     = [coexist_container.greeter_1, coexist_container.greeter_2]
}

data "coexist_route" "client_2" {
  service        = "greeter"
  client_name    = "quickstart"
  client_version = "2.1.0"
  depends_on     = [coexist_container.greeter_1, coexist_container.greeter_2]
}

# Every client generation should have a version: a warning, not an error.
check "every_client_has_a_version" {
  assert {
    condition     = data.coexist_route.client_1.version != null && data.coexist_route.client_2.version != null
    error_message = "A client generation has no version of greeter: ${data.coexist_route.client_1.reason}; ${data.coexist_route.client_2.reason}"
  }
}
