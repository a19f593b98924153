package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestMain lets the test binary act as the coexist binary: a test starts
// os.Args[0] with COEXIST_TEST_MAIN=1 to run real `coexist` processes
// without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("COEXIST_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if greeterBin != "" {
		os.RemoveAll(filepath.Dir(greeterBin))
	}
	os.Exit(code)
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
