# Two major versions of greeter side by side: 1.x clients get 1.4.2,
# 2.x clients get 2.0.0.
resource "coexist_service_version" "greeter_1" {
  service     = "greeter"
  version     = "1.4.2"
  clients     = ">= 1.0, < 2.0"
  description = "plain-text greetings"

  # Destroying a version retires it: Terraform waits until its containers
  # have drained. Give long drains more time.
  timeouts {
    delete = "15m"
  }
}

resource "coexist_service_version" "greeter_2" {
  service = "greeter"
  version = "2.0.0"
  clients = ">= 2.0, < 3.0"
}
