package secretdtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDocker29Missing: without the shared directory the matrix fails with
// an error naming every place it looked, instead of shrinking.
func TestDocker29Missing(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	_, err := docker29From([]string{"", a, b}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), filepath.Join(a, "engines", docker29File)) || !strings.Contains(err.Error(), filepath.Join(b, "engines", docker29File)) || !strings.Contains(err.Error(), SharedDirEnv) {
		t.Errorf("no shared directory: %v", err)
	}
}

// TestDocker29Altered: a binary that is not the README's is refused.
func TestDocker29Altered(t *testing.T) {
	shared := t.TempDir()
	if err := os.MkdirAll(filepath.Join(shared, "engines"), 0o755); err != nil {
		t.Fatal(err)
	}
	xz := exec.Command("xz", "-c")
	xz.Stdin = strings.NewReader("not dockerd")
	out, err := xz.Output()
	if err != nil {
		t.Fatalf("xz: %v", err)
	}
	if err := os.WriteFile(filepath.Join(shared, "engines", docker29File), out, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = docker29From([]string{shared}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not the "+docker29SHA256) {
		t.Errorf("an altered binary: %v", err)
	}
}
