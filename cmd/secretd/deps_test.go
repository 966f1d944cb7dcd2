package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/secretd/secretd/secretdtest"
)

// TestCLIDeps fails when the secretd binary's package graph holds a
// forbidden package: one import of internal/daemon anywhere in the CLI
// brings back all of the daemon's start-up cost.
func TestCLIDeps(t *testing.T) {
	deps := goListDeps(t, ".")
	for _, d := range deps {
		if p, bad := secretdtest.DaemonPackage(d); bad {
			t.Errorf("secretd links %s (of %s); move the command that needs it to a sibling binary", d, p)
		}
	}
	if len(deps) < 50 {
		t.Fatalf("go list gave only %d packages: %q", len(deps), deps)
	}
}

// TestSiblingDeps keeps each sibling to its own heavy part: the daemon
// does not link compose-go, compose does not link the daemon.
func TestSiblingDeps(t *testing.T) {
	for pkg, not := range map[string]string{
		"../secretd-daemon":  "github.com/compose-spec/compose-go",
		"../secretd-compose": "github.com/secretd/secretd/internal/daemon",
	} {
		for _, d := range goListDeps(t, pkg) {
			if strings.HasPrefix(d, not) {
				t.Errorf("%s links %s", pkg, d)
			}
		}
	}
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}
