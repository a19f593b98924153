package api

import (
	"strings"
	"testing"
)

func TestParseServedBy(t *testing.T) {
	good := []struct {
		in   string
		want ServedBy
	}{
		{"greeter@1.0.0 g1", ServedBy{"greeter", "1.0.0", "g1"}},
		{"orders@2.0.0-rc.1 orders-v2-x7k2", ServedBy{"orders", "2.0.0-rc.1", "orders-v2-x7k2"}},
	}
	for _, tt := range good {
		got, err := ParseServedBy(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("ParseServedBy(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("String() = %q, want %q", got.String(), tt.in)
		}
	}
	for _, in := range []string{"", "spoofed", "greeter@1.0.0", "greeter@1.0.0 ", "greeter 1.0.0 g1", "@1.0.0 g1", "greeter@ g1", "greeter g1", "greeter@1@2 g1", "greeter@1.0.0 g1 g2"} {
		if got, err := ParseServedBy(in); err == nil {
			t.Errorf("ParseServedBy(%q) = %+v, want an error", in, got)
		} else if !strings.Contains(err.Error(), HeaderServedBy) {
			t.Errorf("ParseServedBy(%q): error %q does not name the header", in, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseServedBy("greeter@1.0.0 g1") }); n != 0 {
		t.Errorf("ParseServedBy allocates %v times", n)
	}
}
