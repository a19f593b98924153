package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

	"github.com/coexist-dev/coexist/internal/buildinfo"
)

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	describe(fs, "[--json]", "Prints the version of this coexist binary: the release version, or the VCS revision\n"+
		"it was built from, and the Go version.", "coexist version")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if !checkArgs(stderr, "version", pos) {
		return 2
	}
	if *asJSON {
		_ = json.NewEncoder(stdout).Encode(map[string]string{"version": buildinfo.String()})
		return 0
	}
	fmt.Fprintf(stdout, "coexist %s\n", buildinfo.String())
	return 0
}
