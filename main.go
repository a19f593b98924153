// Command terraform-provider-coexist serves the coexist Terraform provider
// (package provider) over plugin protocol 6.
//
//	go build -o bin/terraform-provider-coexist .
//
// Terraform starts it; run it with --debug to attach a debugger and hand
// Terraform the TF_REATTACH_PROVIDERS it prints.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	"github.com/coexist-dev/coexist/internal/buildinfo"
	"github.com/coexist-dev/coexist/provider"
)

// version is set at release time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	var debug bool
	var showVersion bool
	flag.BoolVar(&debug, "debug", false, "serve the provider for a debugger (prints TF_REATTACH_PROVIDERS)")
	flag.BoolVar(&showVersion, "version", false, "print the version and exit")
	flag.Parse()
	if showVersion {
		fmt.Printf("terraform-provider-coexist %s (%s)\n", version, buildinfo.String())
		return
	}

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address:         "registry.terraform.io/coexist-dev/coexist",
		Debug:           debug,
		ProtocolVersion: 6,
	})
	if err != nil {
		log.Fatal(err)
	}
}
