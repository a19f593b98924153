# The versions of greeter still draining.
data "coexist_service_versions" "draining" {
  service = "greeter"
  state   = "draining"
}

output "greeter_draining" {
  value = [for v in data.coexist_service_versions.draining.versions : v.version]
}
