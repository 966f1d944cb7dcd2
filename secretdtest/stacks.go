package secretdtest

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"
)

// DumpStacks asks dockerd for its goroutines (SIGUSR1, which it answers
// with a file under its exec root) and returns the dump: how a test that
// finds the engine stuck says where.
func (e *Engine) DumpStacks(wait time.Duration) (string, error) {
	e.mu.Lock()
	cmd := e.cmd
	e.mu.Unlock()
	if cmd == nil {
		return "", fmt.Errorf("dockerd is not running")
	}
	pattern := filepath.Join(e.Dir, "exec", "goroutine-stacks-*.log")
	before, _ := filepath.Glob(pattern)
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return "", err
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		after, _ := filepath.Glob(pattern)
		for _, p := range after {
			if slices.Contains(before, p) {
				continue
			}
			// Written in one go; wait for the size to settle all the same.
			prev := int64(-1)
			for range 10 {
				fi, err := os.Stat(p)
				if err == nil && fi.Size() == prev && prev > 0 {
					break
				}
				if err == nil {
					prev = fi.Size()
				}
				time.Sleep(100 * time.Millisecond)
			}
			b, err := os.ReadFile(p)
			return string(b), err
		}
	}
	return "", fmt.Errorf("dockerd wrote no goroutine dump within %s", wait)
}

// Stuck dumps dockerd's goroutines and summarises the ones blocked a
// minute or more (StuckGoroutines), or says why it could not.
func (e *Engine) Stuck(limit int) string {
	dump, err := e.DumpStacks(30 * time.Second)
	if err != nil {
		return "no goroutine dump: " + err.Error()
	}
	return StuckGoroutines(dump, limit)
}

// stackHeader matches a goroutine's first line and its wait, if any.
var stackHeader = regexp.MustCompile(`^goroutine \d+ \[([^\]]*)\]:$`)

// StuckGoroutines summarises a Go goroutine dump: the goroutines blocked for
// at least a minute, grouped by their stack (function names only), the
// largest groups first, at most limit of them.
func StuckGoroutines(dump string, limit int) string {
	type group struct {
		n     int
		state string
		stack string
	}
	groups := map[string]*group{}
	for _, g := range strings.Split(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(g), "\n")
		m := stackHeader.FindStringSubmatch(lines[0])
		if m == nil || !strings.Contains(m[1], "minute") {
			continue
		}
		var funcs []string
		for _, l := range lines[1:] {
			if !strings.HasPrefix(l, "\t") && len(funcs) < 12 {
				if i := strings.LastIndex(l, "("); i > 0 && strings.HasSuffix(l, ")") {
					l = l[:i] // the arguments differ from one goroutine to the next
				}
				funcs = append(funcs, "  "+l)
			}
		}
		key := strings.Join(funcs, "\n")
		if groups[key] == nil {
			groups[key] = &group{state: m[1], stack: key}
		}
		groups[key].n++
	}
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b *group) int { return cmp.Or(b.n-a.n, strings.Compare(a.stack, b.stack)) })
	var out strings.Builder
	for i, g := range list {
		if i == limit {
			fmt.Fprintf(&out, "(%d more groups)\n", len(list)-limit)
			break
		}
		fmt.Fprintf(&out, "%d goroutine(s) [%s]:\n%s\n", g.n, g.state, g.stack)
	}
	if out.Len() == 0 {
		return "no goroutine blocked for a minute or more"
	}
	return out.String()
}
