terraform {
  required_version = ">= 1.5"
  required_providers {
    coexist = {
      source = "coexist-dev/coexist"
    }
  }
}

# The registry's address and token come from COEXIST_ADDR and COEXIST_TOKEN.
provider "coexist" {}
