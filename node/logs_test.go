package node

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLogKeeperBounds: the kept output of removed containers is the end of
// each, and the oldest copies go first over the count and the total size.
func TestLogKeeperBounds(t *testing.T) {
	dir := t.TempDir()
	k := &logKeeper{dir: filepath.Join(dir, "logs"), maxFiles: 3, maxBytes: 25, perFile: 10}
	src := filepath.Join(dir, "out")
	for i, id := range []string{"a", "b", "c", "d"} {
		if err := os.WriteFile(src, []byte(strings.Repeat("x", 20)+id+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := k.keep(id, src); err != nil {
			t.Fatal(err)
		}
		// Distinct modification times, oldest first.
		mt := time.Unix(int64(1000+i), 0)
		_ = os.Chtimes(k.path(id), mt, mt)
	}
	if err := k.keep("missing", filepath.Join(dir, "nope")); err != nil {
		t.Fatalf("a container without output: %v", err)
	}
	b, err := os.ReadFile(k.path("d"))
	if err != nil || string(b) != "xxxxxxxxd\n" {
		t.Fatalf("kept output of d: %q, %v; want its last 10 bytes", b, err)
	}
	ents, _ := os.ReadDir(k.dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	// 10 bytes each: 25 bytes hold two; the oldest (a, b) went.
	if strings.Join(names, " ") != "c.log d.log" {
		t.Fatalf("kept %v, want c.log d.log", names)
	}
}

func TestParseLogsRequest(t *testing.T) {
	for _, tc := range []struct{ target, err string }{
		{"/v1/containers/g1/logs", ""},
		{"/v1/containers/g1/logs?tail=5&follow=true", ""},
		{"/v1/containers/g1/logs?tail=-1", "tail: "},
		{"/v1/containers/g1/logs?tail=x", "tail: "},
		{"/v1/containers/g1/logs?follow=maybe", "follow: "},
		{"/v1/containers/g1", "path: "},
		{"/v1/containers//logs", "path: "},
		{"/v1/containers/a/b/logs", "path: "},
	} {
		_, err := parseLogsRequest(httptest.NewRequest("GET", tc.target, nil))
		if (err == nil) != (tc.err == "") || (err != nil && !strings.HasPrefix(err.Error(), tc.err)) {
			t.Errorf("%s: %v, want %q", tc.target, err, tc.err)
		}
	}
}
