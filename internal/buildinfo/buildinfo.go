// Package buildinfo says which build of coexist is running: the version set
// at release time, else the module version and VCS revision Go recorded.
// It is a leaf: stdlib only.
package buildinfo

import (
	"runtime/debug"
	"strings"
)

// Version is set at release time with
// -ldflags "-X github.com/coexist-dev/coexist/internal/buildinfo.Version=v1.2.3".
var Version = ""

// String returns the version, the VCS revision and whether the tree was
// modified, e.g. "v1.2.3" or "(devel) 9b0979b1c2d3 modified".
func String() string {
	bi, ok := debug.ReadBuildInfo()
	v := Version
	if v == "" {
		v = "(devel)"
		if ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	if !ok {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "modified"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return strings.Join(strings.Fields(strings.Join([]string{v, rev, modified, bi.GoVersion}, " ")), " ")
}
