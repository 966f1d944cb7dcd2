// Package tmpfstest helps tests that mount tmpfs filesystems find and
// remove what they left mounted.
package tmpfstest

import (
	"os"
	"strings"
	"testing"

	"github.com/secretd/secretd/tmpfs"
)

// MountsUnder lists the mount points at or below root, from
// /proc/self/mountinfo, in its order (parents before what is mounted on
// them).
func MountsUnder(t testing.TB, root string) []string {
	t.Helper()
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(f[4])
		if mp == root || strings.HasPrefix(mp, root+"/") {
			out = append(out, mp)
		}
	}
	return out
}

// WipeAllUnder wipes every mount at or below root, and fails the test if
// any stays.
func WipeAllUnder(t testing.TB, root string) {
	t.Helper()
	for range 10 {
		left := MountsUnder(t, root)
		if len(left) == 0 {
			return
		}
		// Deepest first, so a stacked or nested mount never blocks its parent.
		for i := len(left) - 1; i >= 0; i-- {
			if _, err := tmpfs.Wipe(left[i]); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	}
	t.Errorf("cleanup: still mounted under %s: %v", root, MountsUnder(t, root))
}
