package linearize

import (
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestCheck: a read that misses an acknowledged write is refused; one that
// sees an ambiguous write late is not, since the History makes an
// ambiguous write return at its end; so is a write undone by an earlier
// one applied after it (what a write resent elsewhere looks like when its
// first copy is applied late).
func TestCheck(t *testing.T) {
	w := func(v string) Input { return Input{Write: true, Key: "k", Value: v} }
	r := Input{Key: "k"}
	for _, tc := range []struct {
		name string
		run  func(h *History)
		want porcupine.CheckResult
	}{
		{"lost write", func(h *History) {
			h.Record(0, w("a"), Output{}, h.Tick(), h.Tick())
			h.Record(1, r, Output{Value: ""}, h.Tick(), h.Tick())
		}, porcupine.Illegal},
		{"ambiguous write seen late", func(h *History) {
			h.Record(0, w("a"), Output{Ambiguous: true}, h.Tick(), 0)
			h.Record(1, r, Output{Value: ""}, h.Tick(), h.Tick())
			h.Record(1, r, Output{Value: "a"}, h.Tick(), h.Tick())
		}, porcupine.Ok},
		{"acknowledged write undone by an earlier copy", func(h *History) {
			h.Record(0, w("a"), Output{}, h.Tick(), h.Tick())
			h.Record(0, w("b"), Output{}, h.Tick(), h.Tick())
			h.Record(1, r, Output{Value: "a"}, h.Tick(), h.Tick())
		}, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := NewWallHistory()
			tc.run(h)
			if got := porcupine.CheckOperations(Model, h.Operations()); (got && tc.want != porcupine.Ok) || (!got && tc.want == porcupine.Ok) {
				t.Fatalf("linearizable = %v, want %v", got, tc.want)
			}
		})
	}
}
