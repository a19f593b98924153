data "coexist_nodes" "web" {
  labels = { pool = "web" }
  status = "ready"
}

resource "coexist_service_version" "greeter_1" {
  service = "greeter"
  version = "1.4.2"
  clients = ">= 1.0, < 2.0"
}

# greeter 1.4.2 on the first ready node of the web pool.
resource "coexist_container" "greeter_1" {
  name = "greeter-v1"
  node = data.coexist_nodes.web.nodes[0].id

  # Refer to the version resource, so that Terraform declares it first.
  services = [{
    service = coexist_service_version.greeter_1.service
    version = coexist_service_version.greeter_1.version
  }]

  config = {
    command = "/opt/greeter/bin/greeter"
    args    = ["--version", coexist_service_version.greeter_1.version]
    env = {
      GREETER_DB_PASSWORD = var.db_password # env values are sensitive
    }
  }

  health = {
    http     = "/healthz"
    interval = "500ms"
    timeout  = "1s"
  }

  restart = {
    attempts  = 5
    interval  = "30m"
    delay     = "1s"
    max_delay = "30s"
  }

  drain_timeout = "30s"

  # A change of what runs replaces the container: with this, the new one
  # starts and becomes healthy before the old one drains (make-before-break).
  lifecycle {
    create_before_destroy = true
  }
}

variable "db_password" {
  type      = string
  sensitive = true
}
