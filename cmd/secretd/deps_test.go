package main

import (
	"os/exec"
	"strings"
	"testing"
)

// forbidden are the packages whose initialisation the CLI must not pay
// for: the daemon with its stores, metrics and etcd/gRPC client (protobuf
// descriptors), and compose-go with its JSON schema and image references.
// Their commands are in the sibling binaries.
var forbidden = []string{
	"github.com/secretd/secretd/internal/daemon",
	"github.com/secretd/secretd/controller",
	"github.com/secretd/secretd/api/server",
	"github.com/secretd/secretd/internal/metrics",
	"github.com/secretd/secretd/internal/store/bolt",
	"github.com/secretd/secretd/internal/store/etcd",
	"github.com/secretd/secretd/internal/compose",
	"github.com/compose-spec/compose-go",
	"github.com/santhosh-tekuri/jsonschema",
	"github.com/distribution/reference",
	"github.com/docker/docker/client",
	"github.com/prometheus",
	"go.etcd.io",
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"github.com/gogo/protobuf",
}

// TestCLIDeps fails when the secretd binary's package graph holds a
// forbidden package: one import of internal/daemon anywhere in the CLI
// brings back all of the daemon's start-up cost.
func TestCLIDeps(t *testing.T) {
	deps := goListDeps(t, ".")
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, f+"/") {
				t.Errorf("secretd links %s (forbidden: %s); move the command that needs it to a sibling binary", d, f)
			}
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
