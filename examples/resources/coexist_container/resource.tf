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

resource "coexist_service_version" "greeter_1_5" {
  service = "greeter"
  version = "1.5.0"
  clients = ">= 1.0, < 2.0"
}

# greeter 1.5.0 from an OCI image (driver "oci": runc, a read-only root, its
# own namespaces), with cgroup limits. The image layout may be made with
#   coexist image pack --binary greeter --tag greeter:1.5.0 --out /var/lib/images/greeter
resource "coexist_container" "greeter_1_5" {
  name = "greeter-v1-5"
  node = data.coexist_nodes.web.nodes[0].id

  services = [{
    service = coexist_service_version.greeter_1_5.service
    version = coexist_service_version.greeter_1_5.version
  }]

  driver = "oci"
  config = {
    image = "oci:/var/lib/images/greeter:${coexist_service_version.greeter_1_5.version}"
    env   = { GREETER_NOTE = "from an image" }
  }

  # Kept as written; a change replaces the container.
  resources = {
    memory = "256MiB"
    cpu    = "0.5"
  }

  health = { http = "/healthz" }

  lifecycle {
    create_before_destroy = true
  }
}
