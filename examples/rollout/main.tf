# The `make demo` rollout, in three applies:
#   1. greeter 1.0.0 alone                       (with_v1 = true,  with_v2 = false)
#   2. greeter 2.0.0 added beside it             (with_v1 = true,  with_v2 = true)
#   3. greeter 1.x retired once its clients moved (with_v1 = false, with_v2 = true)
# Nothing that keeps running is restarted: 2.0.0's container keeps its pid
# from the second apply on.

variable "greeter_command" {
  description = "Absolute path of the greeter binary."
  type        = string
}

variable "with_v1" {
  description = "Run greeter 1.0.0 (for clients 1.x)."
  type        = bool
  default     = true
}

variable "with_v2" {
  description = "Run greeter 2.0.0 (for clients 2.x)."
  type        = bool
  default     = false
}

data "coexist_nodes" "ready" {
  status = "ready"
}

locals {
  node = data.coexist_nodes.ready.nodes[0].id
  versions = merge(
    var.with_v1 ? { "1.0.0" = ">= 1.0, < 2.0" } : {},
    var.with_v2 ? { "2.0.0" = ">= 2.0, < 3.0" } : {},
  )
}

resource "coexist_service_version" "greeter" {
  for_each = local.versions
  service  = "greeter"
  version  = each.key
  clients  = each.value
}

resource "coexist_container" "greeter" {
  for_each = local.versions
  name     = "greeter-${replace(each.key, ".", "-")}"
  node     = local.node
  services = [{
    service = coexist_service_version.greeter[each.key].service
    version = coexist_service_version.greeter[each.key].version
  }]
  config = {
    command = var.greeter_command
    args    = ["--version", each.key]
  }
  health = {
    http     = "/healthz"
    interval = "500ms"
  }
  drain_timeout = "10s"
}

output "containers" {
  description = "Each running container: the version it holds, its state and pid."
  value = {
    for v, c in coexist_container.greeter : c.id => { version = v, state = c.state, pid = c.pid }
  }
}
