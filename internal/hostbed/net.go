package hostbed

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// hostRules is what a host's input chain drops: packets from some hosts,
// and a share of all packets from the bed.
type hostRules struct {
	from map[string]bool // source addresses dropped
	loss int             // percent of the bed's packets dropped
	slow bool            // new connections from the bed go through the proxy
}

// Cut drops every packet from host from to host to (one way: the answers
// of to's own connections to from are dropped too, so TCP is cut both ways
// for connections either side opens, but the schedule says which side's
// rules did it). The rule lives in to's namespace.
func (b *Bed) Cut(from, to *Host) error {
	return b.editRules(to, func(r *hostRules) { r.from[from.IP] = true })
}

// Isolate cuts h from every other host and the control host both ways.
func (b *Bed) Isolate(h *Host) error {
	for _, o := range b.Hosts() {
		if o == h {
			continue
		}
		if err := b.Cut(o, h); err != nil {
			return err
		}
		if err := b.Cut(h, o); err != nil {
			return err
		}
	}
	return b.editRules(h, func(r *hostRules) { r.from[b.ControlIP()] = true })
}

// Split cuts every host of a from every host of b both ways.
func (b *Bed) Split(side1, side2 []*Host) error {
	for _, x := range side1 {
		for _, y := range side2 {
			if err := b.Cut(x, y); err != nil {
				return err
			}
			if err := b.Cut(y, x); err != nil {
				return err
			}
		}
	}
	return nil
}

// Loss drops percent of the packets that reach h from the bed.
func (b *Bed) Loss(h *Host, percent int) error {
	return b.editRules(h, func(r *hostRules) { r.loss = percent })
}

// Heal removes every cut and every loss.
func (b *Bed) Heal() error {
	var first error
	for _, h := range b.Hosts() {
		// Connections already through a proxy go on at full speed.
		if _, err := os.Stat(filepath.Join(h.Dir(), "proxy-delay")); err == nil {
			_ = os.WriteFile(filepath.Join(h.Dir(), "proxy-delay"), []byte("0"), 0o644)
		}
		if err := b.editRules(h, func(r *hostRules) { clear(r.from); r.loss = 0; r.slow = false }); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (b *Bed) editRules(h *Host, edit func(*hostRules)) error {
	b.mu.Lock()
	r := b.rules[h.Name]
	if r == nil {
		r = &hostRules{from: map[string]bool{}}
		b.rules[h.Name] = r
	}
	edit(r)
	text := r.render(b.subnet)
	b.mu.Unlock()
	// Replace the table in one transaction: add (so that delete cannot
	// fail), delete, define.
	if err := runInput(text, "ip", "netns", "exec", h.NS, "nft", "-f", "-"); err != nil {
		return fmt.Errorf("rules of %s: %w", h.Name, err)
	}
	return nil
}

func (r *hostRules) render(subnet string) string {
	var b strings.Builder
	b.WriteString("add table inet cxbed\ndelete table inet cxbed\ntable inet cxbed {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t\tiifname \"lo\" accept\n")
	from := make([]string, 0, len(r.from))
	for ip, on := range r.from {
		if on {
			from = append(from, ip)
		}
	}
	slices.Sort(from)
	if len(from) > 0 {
		fmt.Fprintf(&b, "\t\tip saddr { %s } drop\n", strings.Join(from, ", "))
	}
	if r.loss > 0 {
		fmt.Fprintf(&b, "\t\tip saddr %s0/24 numgen random mod 100 < %d drop\n", subnet, r.loss)
	}
	b.WriteString("\t}\n}\nadd table ip cxnat\ndelete table ip cxnat\n")
	if r.slow {
		b.WriteString("table ip cxnat {\n\tchain pre {\n\t\ttype nat hook prerouting priority -100;\n")
		for _, p := range proxiedPorts {
			fmt.Fprintf(&b, "\t\tiifname \"eth0\" tcp dport %d redirect to :%d\n", p, p+proxyOffset)
		}
		b.WriteString("\t}\n}\n")
	}
	return b.String()
}

// SmallDisk mounts a tmpfs of size bytes at a new directory of the host
// and returns its path: a data dir that a Fill makes full.
func (h *Host) SmallDisk(size int64) (string, error) {
	dir := filepath.Join(h.bed.cfg.Dir, h.NS+"-data")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("small disk: %w", err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		return "", fmt.Errorf("small disk: mount tmpfs at %s: %w", dir, err)
	}
	h.bed.mu.Lock()
	h.bed.mounts = append(h.bed.mounts, dir)
	h.bed.mu.Unlock()
	return dir, nil
}

// Fill writes a ballast file into dir until the disk is full; Unfill
// removes it.
func Fill(dir string) error {
	f, err := os.Create(filepath.Join(dir, "cxbed-ballast"))
	if err != nil {
		return fmt.Errorf("fill %s: %w", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for range 4096 { // at most 4 GiB: a bound, never reached on a small disk
		if _, err := f.Write(buf); err != nil {
			return nil // full
		}
	}
	return fmt.Errorf("fill %s: not full after 4 GiB", dir)
}

// Unfill removes the ballast of Fill.
func Unfill(dir string) error {
	if err := os.Remove(filepath.Join(dir, "cxbed-ballast")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("unfill %s: %w", dir, err)
	}
	return nil
}
