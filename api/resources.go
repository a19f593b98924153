package api

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Resources are a container's limits, as written: Memory "256MiB" (or "512M",
// "1GiB", a plain number of bytes), CPU "0.5" (cores). The oci driver applies
// them as cgroup limits; the exec driver refuses them (docs/design.md §6).
type Resources struct {
	Memory string `json:"memory,omitempty"`
	CPU    string `json:"cpu,omitempty"`
}

// Bounds of Resources: below MinMemoryBytes a container cannot even start.
const (
	MinMemoryBytes = 4 << 20
	MinCPU         = 0.01
	MaxCPU         = 1024
)

var memoryUnits = []struct {
	suffix string
	mult   float64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	{"B", 1},
}

// ParseMemory parses a memory size: a number of bytes, or a number with a
// unit (KiB, MiB, GiB, TiB; KB, MB, GB, TB; Ki, Mi...; K, M...). It must be at
// least MinMemoryBytes.
func ParseMemory(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("must not be empty")
	}
	mult := 1.0
	for _, u := range memoryUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, fmt.Errorf("%q is not a size; write e.g. 256MiB or 1GiB", s)
	}
	b := n * mult
	if b < MinMemoryBytes {
		return 0, fmt.Errorf("%q is less than the minimum of 4MiB", s)
	}
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(b), nil
}

// ParseCPU parses a CPU limit in cores ("0.5", "2"), between MinCPU and MaxCPU.
func ParseCPU(s string) (float64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("must not be empty")
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, fmt.Errorf("%q is not a number of cores; write e.g. 0.5 or 2", s)
	}
	if n < MinCPU || n > MaxCPU {
		return 0, fmt.Errorf("%q is out of range: want %g to %g cores", s, MinCPU, float64(MaxCPU))
	}
	return n, nil
}
