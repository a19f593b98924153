# Every ready node of the web pool (agents started with --label pool=web).
data "coexist_nodes" "web" {
  labels = { pool = "web" }
  status = "ready"
}

output "web_nodes" {
  value = [for n in data.coexist_nodes.web.nodes : n.id]
}
