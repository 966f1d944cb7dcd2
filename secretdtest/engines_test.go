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

// TestDockerdRelease reads the host's dockerd version as the matrix names
// it, and falls back on a binary that does not say.
func TestDockerdRelease(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "dockerd")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'Docker version 29.7.2, build d681cdaead93'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got := dockerdRelease(fake, "x"); got != "29.7" {
		t.Errorf("release of a 29.7.2 dockerd: %q", got)
	}
	if got := dockerdRelease(filepath.Join(t.TempDir(), "none"), "20.10"); got != "20.10" {
		t.Errorf("release of a missing dockerd: %q, want the fallback", got)
	}
}
