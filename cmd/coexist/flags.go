package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// This file holds what every command shares in reading its command line
// (docs/design.md §5, CLI conventions): flags before or after positional
// arguments, one line naming a missing or unexpected argument, and secret
// flags whose value never appears in help or usage text and is better taken
// from the environment or a file than from argv.

// parseArgs parses args with fs, accepting flags before and after the
// positional arguments; after "--" every argument is positional. It then
// resolves the secret flags of fs (see secretVar), printing a warning for a
// secret given on the command line. It returns the positional arguments, or
// ok false with the exit code the command should return: 0 for --help, 2
// for bad usage (fs has said why, on its output).
func parseArgs(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, 0, false
			}
			return nil, 2, false
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if endedByDashes(fs, args[:len(args)-len(rest)]) {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if s, isSecret := f.Value.(*secretValue); isSecret && err == nil {
			err = s.resolve(fs.Output(), fs.Name())
		}
	})
	if err != nil {
		fmt.Fprintf(fs.Output(), "coexist %s: %v\n", fs.Name(), err)
		return nil, 2, false
	}
	return pos, 0, true
}

// endedByDashes reports whether flag parsing of the consumed arguments
// stopped at a "--" terminator (and not at a "--" that is a flag's value).
func endedByDashes(fs *flag.FlagSet, consumed []string) bool {
	n := len(consumed)
	if n == 0 || consumed[n-1] != "--" {
		return false
	}
	if n == 1 {
		return true
	}
	prev := consumed[n-2]
	if !strings.HasPrefix(prev, "-") || strings.Contains(prev, "=") || prev == "--" {
		return true
	}
	f := fs.Lookup(strings.TrimLeft(prev, "-"))
	if f == nil {
		return true
	}
	b, isBool := f.Value.(interface{ IsBoolFlag() bool })
	return isBool && b.IsBoolFlag() // a bool flag takes no value: "--" ended the flags
}

// checkArgs checks the positional arguments of the command cmd against
// want, their names: required ones as "<service>", optional ones as
// "[path]", required first. It prints one line naming the first missing or
// unexpected argument and returns false when they do not fit.
func checkArgs(stderr io.Writer, cmd string, pos []string, want ...string) bool {
	required := 0
	for _, w := range want {
		if strings.HasPrefix(w, "<") {
			required++
		}
	}
	switch {
	case len(pos) < required:
		fmt.Fprintf(stderr, "coexist %s: missing %s (see 'coexist %s --help')\n", cmd, want[len(pos)], cmd)
		return false
	case len(pos) > len(want) && len(want) == 0:
		fmt.Fprintf(stderr, "coexist %s: unexpected argument %q: %s takes flags only\n", cmd, pos[0], cmd)
		return false
	case len(pos) > len(want):
		fmt.Fprintf(stderr, "coexist %s: unexpected argument %q after %s\n", cmd, pos[len(want)], strings.Join(want, " "))
		return false
	}
	return true
}

// secretValue is the flag.Value of a secret flag such as --token. Its
// String is always empty, so that help and usage text never print the
// secret as a default; parseArgs fills it in from, in order, the flag, the
// file of its companion --NAME-file flag, or its environment variable.
type secretValue struct {
	dst  *string
	name string // the flag's name, "token"
	env  string // "COEXIST_TOKEN"
	file string // from --NAME-file
	argv bool   // given on the command line
}

func (s *secretValue) String() string { return "" }

func (s *secretValue) Set(v string) error {
	*s.dst, s.argv = v, true
	return nil
}

// secretVar defines the secret flag --name, read into dst, with its
// companion --name-file, and env as the fallback. what says what the secret
// is, for the help text.
func secretVar(fs *flag.FlagSet, dst *string, name, env, what string) {
	s := &secretValue{dst: dst, name: name, env: env}
	usage := fmt.Sprintf("%s, a `secret`: better from %s or --%s-file, as the command line is visible to every local user", what, env, name)
	if os.Getenv(env) != "" {
		usage += " (from " + env + ")" // never the value itself
	}
	fs.Var(s, name, usage)
	fs.StringVar(&s.file, name+"-file", "", fmt.Sprintf("`file` holding the %s (its surrounding white space is ignored)", what))
}

// resolve fills in the secret after parsing. A secret given on the command
// line earns a one-line warning on w.
func (s *secretValue) resolve(w io.Writer, cmd string) error {
	switch {
	case s.argv && s.file != "":
		return fmt.Errorf("--%s and --%s-file exclude each other", s.name, s.name)
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			return fmt.Errorf("--%s-file: %w", s.name, err)
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			return fmt.Errorf("--%s-file %s: the file is empty", s.name, s.file)
		}
		*s.dst = v
	case s.argv:
		if *s.dst != "" {
			fmt.Fprintf(w, "coexist %s: warning: --%s on the command line is visible to every local user (ps, /proc); use %s or --%s-file\n",
				cmd, s.name, s.env, s.name)
		}
	default:
		*s.dst = os.Getenv(s.env)
	}
	return nil
}
