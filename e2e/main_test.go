// Package e2e tests the built secretd binary against the real Docker Engine
// on this host: no fakes. Tests that kill or restart an engine start a
// private dockerd of their own.
package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/secretd/secretd/secretdtest"
)

var (
	// binary is the secretd built once for the whole run.
	binary string
	// image is the test image: a static busybox imported from a rootfs,
	// because no registry can be reached. The tag is per run, so two runs
	// on one engine never remove each other's image.
	image = fmt.Sprintf("secretd-e2e:%d", os.Getpid())
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e: must run as root (mounts tmpfs, serves a Docker plugin socket)")
		return 1
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: no Docker Engine answers: %v\n%s", err, out)
		return 1
	}
	tmp, err := os.MkdirTemp("", "secretd-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	os.Chmod(tmp, 0o755) // tests run the binary as nobody too
	binary = filepath.Join(tmp, "secretd")
	_, self, _, _ := runtime.Caller(0)
	build := exec.Command("go", "build", "-o", binary, "./cmd/secretd")
	build.Dir = filepath.Dir(filepath.Dir(self))
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build secretd: %v\n%s", err, out)
		return 1
	}
	if err := secretdtest.BusyboxImage([]string{"docker"}, image, nil); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build test image: %v\n", err)
		return 1
	}
	defer exec.Command("docker", "rmi", "-f", image).Run()
	secretdtest.ParkFree()
	defer secretdtest.CloseParked()
	return m.Run()
}

// result is what a command printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
}

// runCmd runs name with args, stdin and extra environment.
func runCmd(t testing.TB, env []string, stdin string, name string, args ...string) result {
	t.Helper()
	return runWith(t, env, stdin, nil, name, args...)
}

// runCmdAttr runs name with process attributes (another uid).
func runCmdAttr(t testing.TB, attr *syscall.SysProcAttr, name string, args ...string) result {
	t.Helper()
	return runWith(t, nil, "", attr, name, args...)
}

func runWith(t testing.TB, env []string, stdin string, attr *syscall.SysProcAttr, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = attr
	cmd.Env = append(os.Environ(), env...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else {
			t.Fatalf("run %s %v: %v", name, args, err)
		}
	}
	return r
}

// docker runs the docker CLI against the shared engine.
func docker(t testing.TB, args ...string) result {
	t.Helper()
	return runCmd(t, nil, "", "docker", args...)
}

// mustDocker runs docker and fails the test unless it succeeds.
func mustDocker(t testing.TB, args ...string) string {
	t.Helper()
	r := docker(t, args...)
	if r.code != 0 {
		t.Fatalf("docker %s: %s", strings.Join(args, " "), r)
	}
	return strings.TrimSpace(r.stdout)
}
