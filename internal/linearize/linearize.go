// Package linearize is the register model the registry's histories are
// checked against with porcupine, and a recorder of such histories: one
// register per key, written by a declare of a version's clients range and
// read by a consistent read. The in-process Raft test (package raftregistry)
// and the test bed of real processes on separate hosts (internal/hostbed)
// check their histories with the same model.
//
// It imports nothing of the module.
package linearize

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// Input is an operation on one register: a write of Value, or a read.
type Input struct {
	Write bool
	Key   string
	Value string
}

// Output is what an operation returned: for a read the value seen ("" when
// the register was never written); for a write only whether its outcome is
// unknown (its Return time is then the end of the history).
type Output struct {
	Value     string
	Ambiguous bool
}

// Model is one register per key, partitioned by key.
var Model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(Input).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		slices.Sort(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(st, in, out any) (bool, any) {
		i := in.(Input)
		if i.Write {
			return true, i.Value
		}
		return out.(Output).Value == st.(string), st
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(Input), out.(Output)
		if i.Write {
			if o.Ambiguous {
				return fmt.Sprintf("write(%s, %q) -> unknown", i.Key, i.Value)
			}
			return fmt.Sprintf("write(%s, %q)", i.Key, i.Value)
		}
		return fmt.Sprintf("read(%s) -> %q", i.Key, o.Value)
	},
	DescribeState: func(st any) string { return fmt.Sprintf("%q", st) },
	DescribeOperationMetadata: func(info any) string {
		s, _ := info.(string)
		return s
	},
}

// History records operations. Its timestamps come from Tick: a counter by
// default (time may stand still in a synctest bubble, so a clock cannot
// order operations there), or a monotonic clock when Clock is set.
type History struct {
	// Clock, when set, gives timestamps instead of the counter: for
	// processes on real time, where a counter taken before a call and
	// after its answer orders operations just as well, but a clock
	// also shows how long each took.
	Clock func() int64

	counter atomic.Int64

	mu      sync.Mutex
	ops     []porcupine.Operation
	pending []int // ambiguous operations; they return at the end
	clients int
}

// NewWallHistory returns a History whose timestamps are nanoseconds since
// its creation on the monotonic clock.
func NewWallHistory() *History {
	start := time.Now()
	return &History{Clock: func() int64 { return int64(time.Since(start)) }}
}

// Tick returns the next timestamp.
func (h *History) Tick() int64 {
	if h.Clock != nil {
		return h.Clock()
	}
	return h.counter.Add(1)
}

// NewClient returns a fresh porcupine client id. A client whose operation
// is left pending continues under a new id, as Jepsen does with a crashed
// process, so that no client has two operations open at once.
func (h *History) NewClient() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clients++
	return h.clients - 1
}

// Record records an operation.
func (h *History) Record(client int, in Input, out Output, call, ret int64) {
	h.RecordOn(client, in, out, call, ret, "")
}

// RecordOn records an operation with a note (which server served it) that
// the visualization shows.
func (h *History) RecordOn(client int, in Input, out Output, call, ret int64, note string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.Ambiguous {
		h.pending = append(h.pending, len(h.ops))
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret, Metadata: note})
}

// Operations returns the history; an ambiguous write may take effect at any
// time after its call, so it returns after everything else.
func (h *History) Operations() []porcupine.Operation {
	end := h.Tick()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := slices.Clone(h.ops)
	for _, i := range h.pending {
		out[i].Return = end
	}
	return out
}

// Check checks a history with porcupine within timeout and, when it is not
// linearizable, writes the visualization (.html) and a listing of the keys
// that are not (.txt) to files and returns the .html file's path.
func Check(ops []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, string, error) {
	res, info := porcupine.CheckOperationsVerbose(Model, ops, timeout)
	if res == porcupine.Ok {
		return res, "", nil
	}
	f, err := os.CreateTemp("", "coexist-linearizability-*.html")
	if err != nil {
		return res, "", err
	}
	path := f.Name()
	_ = f.Close()
	if err := porcupine.VisualizePath(Model, info, path); err != nil {
		return res, path, err
	}
	return res, path, os.WriteFile(strings.TrimSuffix(path, ".html")+".txt", []byte(Dump(ops, timeout)), 0o600)
}

// KeyResults checks each key's history on its own, each within timeout,
// and returns the keys that are not linearizable and those that could not
// be checked in time; a key's history is far cheaper to check than the
// whole, and a timeout on one key leaves the verdict on the others.
func KeyResults(ops []porcupine.Operation, timeout time.Duration) (checked int, illegal, unknown []string) {
	for _, part := range Model.Partition(ops) {
		key := part[0].Input.(Input).Key
		switch porcupine.CheckOperationsTimeout(Model, part, timeout) {
		case porcupine.Ok:
			checked++
		case porcupine.Illegal:
			illegal = append(illegal, key)
		default:
			unknown = append(unknown, key)
		}
	}
	return checked, illegal, unknown
}

// Dump lists, for every key whose history alone is not linearizable (or
// could not be checked within timeout), its operations in call order.
func Dump(ops []porcupine.Operation, timeout time.Duration) string {
	var b strings.Builder
	for _, part := range Model.Partition(ops) {
		res := porcupine.CheckOperationsTimeout(Model, part, timeout)
		if res == porcupine.Ok {
			continue
		}
		part = slices.Clone(part)
		slices.SortFunc(part, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		verdict := "not linearizable"
		if res == porcupine.Unknown {
			verdict = "not checked within " + timeout.String()
		}
		fmt.Fprintf(&b, "key %s: %s\n", part[0].Input.(Input).Key, verdict)
		for _, op := range part {
			fmt.Fprintf(&b, "  [%6d, %6d] client %2d  %-40s  %v\n", op.Call, op.Return, op.ClientId,
				Model.DescribeOperation(op.Input, op.Output), op.Metadata)
		}
	}
	return b.String()
}
