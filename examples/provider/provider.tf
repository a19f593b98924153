terraform {
  required_providers {
    coexist = {
      source = "coexist-dev/coexist"
    }
  }
}

# The registry's address and an operator (or management) token. Both may
# come from the environment instead: COEXIST_ADDR and COEXIST_TOKEN.
provider "coexist" {
  address = "https://registry.example.internal:7700"
  token   = var.coexist_token

  # TLS: the CA that signs the registry's certificate, and a client
  # certificate when the registry asks for one.
  ca_file   = "/etc/coexist/ca.pem"
  cert_file = "/etc/coexist/operator.pem"
  key_file  = "/etc/coexist/operator-key.pem"
}

variable "coexist_token" {
  type      = string
  sensitive = true
}
