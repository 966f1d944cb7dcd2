// Package e2e tests the built secretd binary against a real Docker Engine:
// no fakes. The suite starts a dockerd of its own and runs every test
// against it (DOCKER_HOST), so the host's engine never sees a test
// container, volume or volume driver; a chosen set runs on Docker Engine
// 29.7.2 too (see engines_test.go). Tests that kill or restart an engine
// start one more private dockerd each.
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
	// runEngine is the run's dockerd, the one DOCKER_HOST names.
	runEngine *secretdtest.Engine
	// versions are the engine versions a test may start private engines
	// of, the run's own first.
	versions []secretdtest.EngineVersion
	// image is the test image: a static busybox imported from a rootfs,
	// because no registry can be reached.
	image = fmt.Sprintf("secretd-e2e:%d", os.Getpid())
)

// TestMain runs the suite isolated (see secretdtest.Isolate): in a mount
// namespace of its own, against a dockerd of its own, so the host's engine
// never learns a test driver.
func TestMain(m *testing.M) {
	_, self, _, _ := runtime.Caller(0)
	os.Exit(secretdtest.Isolate(m, secretdtest.IsolateOptions{
		Name:   "e2e",
		Module: filepath.Dir(filepath.Dir(self)),
		// The engine matrix (see engines_test.go): the run fails, loudly,
		// when Engine 29.7.2 cannot be found.
		Docker29: true,
		Setup: func(r *secretdtest.Isolated) error {
			binary, runEngine, versions = r.Binary, r.Engine, r.Versions
			matrix = []*suiteEngine{{version: r.Engine.Version, bindsAtCopyUp: true}, {version: r.Docker29.Version, host: r.Docker29.Host}}
			for _, e := range []*secretdtest.Engine{r.Engine, r.Docker29} {
				if err := secretdtest.BusyboxImage([]string{"docker", "-H", e.Host}, image, nil); err != nil {
					return fmt.Errorf("build test image on engine %s: %w", e.Version.Name, err)
				}
			}
			return nil
		},
	}))
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

// docker runs the docker CLI against the test's engine of the matrix (see
// onEngines), the run's own unless it runs on another.
func docker(t testing.TB, args ...string) result {
	t.Helper()
	return runCmd(t, engineOf(t).env(), "", "docker", args...)
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
