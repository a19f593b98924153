output "gateway" {
  description = "The node's gateway: call http://<gateway>/greeter/hello with a Coexist-Client-Version header."
  value       = data.coexist_nodes.ready.nodes[0].gateway
}

output "containers" {
  description = "The containers, by id, with the version each holds and its pid."
  value = {
    for c in [coexist_container.greeter_1, coexist_container.greeter_2] :
    c.id => { version = one(c.services).version, state = c.state, pid = c.pid }
  }
}

output "routes" {
  description = "The version each client generation is routed to."
  value = {
    "1.3.0" = data.coexist_route.client_1.version
    "2.1.0" = data.coexist_route.client_2.version
  }
}
