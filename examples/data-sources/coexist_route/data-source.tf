# Where does a 1.6 client of greeter go, when it asks for 1.x only?
data "coexist_route" "greeter_for_web" {
  service        = "greeter"
  client_name    = "web"
  client_version = "1.6.0"
  requires       = { greeter = "~> 1.4" }
}

output "greeter_for_web" {
  value = {
    version    = data.coexist_route.greeter_for_web.version
    containers = [for c in data.coexist_route.greeter_for_web.containers : c.id]
    reason     = data.coexist_route.greeter_for_web.reason
  }
}
