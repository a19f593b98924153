// Package tools pins the versions of the developer tools the GNUmakefile
// builds: tfplugindocs, which generates the provider docs under docs/.
//
// It is a module of its own so that the tools' dependencies stay out of the
// main module's go.mod. Build a tool with
//
//	go build -C tools -o bin/tfplugindocs github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs
package tools
