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
const imagePackAbout = `pack writes an OCI image layout holding one static executable as its
entrypoint, so that an agent's oci driver can run it without a registry
(config.image = "oci:DIR:NAME:VERSION"; docs/design.md §6). Packing the
same binary with the same flags gives the same digest.`

const imagePackExample = `CGO_ENABLED=0 go build -o greeter ./examples/greeter
coexist image pack --binary greeter --tag greeter:1.1.0 --env GREETER_VERSION=1.1.0 --out images/greeter`

func runImage(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "pack" {
		fmt.Fprintf(stderr, "Usage: coexist image pack --binary PATH --tag NAME:VERSION --out DIR [--env K=V]... [--arg ARG]...\n\n%s\n\nExample:\n", imagePackAbout)
		for _, l := range strings.Split(imagePackExample, "\n") {
			fmt.Fprintf(stderr, "  %s\n", l)
		}
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
	describe(fs, "--binary PATH --tag NAME:VERSION --out DIR [--env K=V]... [--arg ARG]...", imagePackAbout, imagePackExample)
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
