package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// numbered returns n lines "line 000001 ..." as one string.
func numbered(n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "line %06d %s\n", i, strings.Repeat("y", 30))
	}
	return b.String()
}

func TestRotateLog(t *testing.T) {
	t.Parallel()
	const max = 16 << 10
	orig := numbered(3000) // ~130 KiB
	for _, collapse := range []bool{true, false} {
		t.Run(fmt.Sprintf("collapse=%v", collapse), func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "stdout.log")
			if err := os.WriteFile(p, []byte(orig), 0o640); err != nil {
				t.Fatal(err)
			}
			cut, err := rotateLog(p, max, collapse)
			if err != nil || !cut {
				t.Fatalf("rotateLog = %v, %v", cut, err)
			}
			b, _ := os.ReadFile(p)
			if len(b) > max || len(b) < max/4 {
				t.Fatalf("size after rotation = %d, want in (%d, %d]", len(b), max/4, max)
			}
			if !strings.HasSuffix(orig, string(b)) {
				t.Fatal("what remains is not the end of the log")
			}
			if !collapse && !strings.HasPrefix(string(b), "line ") {
				t.Fatalf("copy rotation does not start at a line: %q", b[:20])
			}
			// Under the cap: untouched.
			if cut, err := rotateLog(p, max, collapse); err != nil || cut {
				t.Fatalf("second rotateLog = %v, %v; want no cut", cut, err)
			}
		})
	}
	if cut, err := rotateLog(filepath.Join(t.TempDir(), "missing"), max, true); cut || err != nil {
		t.Fatalf("rotateLog(missing) = %v, %v", cut, err)
	}
}

func TestTailFile(t *testing.T) {
	old := tailChunk
	tailChunk = 7 // lines straddle chunk boundaries
	t.Cleanup(func() { tailChunk = old })

	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lines := func(n, from int) []string {
		var out []string
		for i := from; i < from+n; i++ {
			out = append(out, fmt.Sprintf("line %06d %s", i, strings.Repeat("y", 30)))
		}
		return out
	}
	big := write("big", numbered(100))
	for _, tc := range []struct {
		name string
		path string
		n    int
		want []string
	}{
		{"last 3", big, 3, lines(3, 98)},
		{"one", big, 1, lines(1, 100)},
		{"more than there are", write("small", "a\nb\n"), 10, []string{"a", "b"}},
		{"no final newline", write("nonl", "a\nb\nc"), 2, []string{"b", "c"}},
		{"empty", write("empty", ""), 3, nil},
		{"blank lines kept", write("blank", "a\n\nb\n"), 2, []string{"", "b"}},
		{"missing", filepath.Join(dir, "missing"), 3, nil},
		{"zero lines", big, 0, nil},
	} {
		got, err := tailFile(tc.path, tc.n)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: tailFile = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestRotateLogWhileWriting cuts a log again and again while a writer keeps
// appending to it, as a container does: the content stays in order, and with
// collapse (where the file system has it) nothing at all is lost.
func TestRotateLogWhileWriting(t *testing.T) {
	t.Parallel()
	const max = 8 << 10
	for _, collapse := range []bool{true, false} {
		t.Run(fmt.Sprintf("collapse=%v", collapse), func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "stdout.log")
			w, err := openLog(p)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 1; i <= 20000; i++ {
					if _, err := fmt.Fprintf(w, "n %07d\n", i); err != nil { // one write each
						return
					}
				}
			}()
			cuts := 0
			for running := true; running; {
				select {
				case <-done:
					running = false
				default:
				}
				cut, err := rotateLog(p, max, collapse)
				if err != nil {
					t.Fatal(err)
				}
				if cut {
					cuts++
				}
			}
			if cuts == 0 {
				t.Skip("the writer finished before any cut")
			}
			b, _ := os.ReadFile(p)
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if collapse {
				lines = lines[1:] // the cut falls anywhere: the first line may be partial
			} else if !strings.HasPrefix(lines[0], "n ") {
				t.Fatalf("copy rotation left a partial first line %q", lines[0])
			}
			prev := 0
			consecutive := true
			for _, l := range lines {
				var n int
				if _, err := fmt.Sscanf(l, "n %d", &n); err != nil {
					t.Fatalf("garbled line %q", l)
				}
				if n <= prev {
					t.Fatalf("line %d after %d: out of order", n, prev)
				}
				if prev != 0 && n != prev+1 {
					consecutive = false
				}
				prev = n
			}
			if prev != 20000 {
				t.Fatalf("last line %d, want 20000", prev)
			}
			if collapse && !consecutive && supportsCollapse(t, p) {
				t.Fatal("lines lost despite collapse")
			}
		})
	}
}

// supportsCollapse reports whether the file system of path supports
// FALLOC_FL_COLLAPSE_RANGE, by trying it on a scratch file.
func supportsCollapse(t *testing.T, path string) bool {
	p := filepath.Join(filepath.Dir(path), "probe")
	if err := os.WriteFile(p, make([]byte, 64<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return collapseHead(f, 64<<10, 16<<10)
}
