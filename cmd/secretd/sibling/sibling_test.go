package sibling

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCandidates: beside the binary, then PREFIX/libexec/secretd, with a
// symbolic link to the binary resolved first.
func TestCandidates(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "usr")
	exe := filepath.Join(prefix, "bin", "secretd")
	if err := os.MkdirAll(filepath.Dir(exe), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "secretd")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	got := Candidates(link, Daemon)
	want := []string{filepath.Join(prefix, "bin", Daemon), filepath.Join(prefix, "libexec", "secretd", Daemon)}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("candidates %q, want %q", got, want)
	}

	// Missing everywhere: the error names both places.
	if _, err := find(got, Daemon); err == nil || !strings.Contains(err.Error(), want[0]) || !strings.Contains(err.Error(), want[1]) {
		t.Errorf("missing sibling: %v", err)
	}
	// Not executable is not found; in libexec it is.
	if err := os.WriteFile(want[0], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(want[1]), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(want[1], nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if p, err := find(got, Daemon); err != nil || p != want[1] {
		t.Errorf("found %q, %v; want %s", p, err, want[1])
	}
}
