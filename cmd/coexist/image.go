package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/coexist-dev/coexist/node/image"
)

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// runImage runs `coexist image pack`: an OCI image layout from a static
// binary, for the oci driver (docs/design.md §6).
func runImage(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "pack" {
		fmt.Fprintln(stderr, "Usage: coexist image pack --binary PATH --tag NAME:VERSION --out DIR [--env K=V]... [--arg ARG]...")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return 0
		}
		return 2
	}
	fs := flag.NewFlagSet("image pack", flag.ContinueOnError)
	fs.SetOutput(stderr)
	bin := fs.String("binary", "", "a static executable: the image's one file and its entrypoint (required)")
	tag := fs.String("tag", "", "the image's name and version, NAME:VERSION (required)")
	out := fs.String("out", "", "the OCI image layout directory to write, created or added to (required)")
	var env, argv listFlag
	fs.Var(&env, "env", "KEY=VALUE in the image's environment (repeatable)")
	fs.Var(&argv, "arg", "an argument of the image's default command (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: coexist image pack --binary PATH --tag NAME:VERSION --out DIR [--env K=V]... [--arg ARG]...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	for _, req := range []struct{ name, v string }{{"binary", *bin}, {"tag", *tag}, {"out", *out}} {
		if req.v == "" {
			fmt.Fprintf(stderr, "coexist image pack: --%s is required\n", req.name)
			return 2
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "coexist image pack: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	d, err := image.Pack(image.PackSpec{Binary: *bin, Tag: *tag, Out: *out, Env: env, Args: argv})
	if err != nil {
		fmt.Fprintf(stderr, "coexist image pack: %v\n", err)
		return 2
	}
	fmt.Fprintf(stdout, "%s %s\n", *tag, d)
	fmt.Fprintf(stdout, "run it with config.image = \"oci:%s:%s\"\n", *out, (*tag)[strings.LastIndexByte(*tag, ':')+1:])
	return 0
}
