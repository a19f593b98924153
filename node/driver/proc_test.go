package driver

import (
	"os"
	"testing"
)

func TestParseProcStat(t *testing.T) {
	t.Parallel()
	// The command name may hold spaces and parentheses.
	line := "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200 18446744073709551615\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.State != 'S' || st.PGID != 4242 || st.StartTime != 987654 {
		t.Fatalf("parsed %+v", st)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 no-paren S"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}

	self, err := readProcStat(os.Getpid())
	if err != nil || self.StartTime == 0 {
		t.Fatalf("readProcStat(self) = %+v, %v", self, err)
	}
	if ok, _, err := alive(os.Getpid(), self.StartTime); !ok || err != nil {
		t.Fatalf("alive(self) = %v, %v", ok, err)
	}
	if ok, _, _ := alive(os.Getpid(), self.StartTime+1); ok {
		t.Fatal("alive(self, wrong start time) = true")
	}
}
