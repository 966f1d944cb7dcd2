package e2e

import (
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/secretd/secretd/secretdtest"
)

// The engine matrix. The suite runs on two engines of its own: the host's
// dockerd (Debian's Engine 20.10, API 1.41), which DOCKER_HOST names and
// every test uses, and Docker Engine 29.7.2 refusing clients below API 1.44,
// as Engine 29.0-29.2 do. A chosen set of tests runs on both (onEngines):
// the seeds' walkthroughs, label binding, copy-up, rotation, the restart
// and wipe of secretd and of the engine, and the boot order. Running the
// whole suite twice would double `make test` for little: most tests check
// secretd's own logic, which no engine version changes.

// suiteEngine is one engine of the matrix.
type suiteEngine struct {
	version secretdtest.EngineVersion
	// host is its socket as a DOCKER_HOST value; "" for the run's own
	// engine, which DOCKER_HOST already names.
	host string
	// bindsAtCopyUp: the engine lists a container while it creates it, at
	// the Mount that copies the image's content into a new volume, so a
	// label volume can bind there. Engine 20.10 does; Engine 29 mounts
	// before it registers the container, and such a create fails closed
	// with secretd's advice to add volume-nocopy (TestCopyUp).
	bindsAtCopyUp bool
}

// nocopy is what a test adds to a --mount of a label volume (",..."), or
// to a -v of a named volume without options (":..."), so that it binds
// on this engine: volume-nocopy where the engine cannot bind at copy-up,
// as the README mounts, nothing where it can, which keeps the copy-up
// path under test there.
func (e *suiteEngine) nocopy(sep string) string {
	if e.bindsAtCopyUp {
		return ""
	}
	if sep == ":" {
		return ":nocopy"
	}
	return ",volume-nocopy"
}

var (
	// matrix lists the engines, the run's own first (see TestMain).
	matrix []*suiteEngine
	// testEngines maps the name of a test that runs on an engine of the
	// matrix to that engine; its subtests inherit it.
	testEngines sync.Map
)

// onEngines runs f once per engine of the matrix, each as a subtest named
// after it ("engine-29.7.2"). Inside f, the docker helpers (docker,
// mustDocker, execSh, ...), the daemons a test starts (startDaemon,
// startTestDaemon) and the secretd CLI they run use that engine.
func onEngines(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, e := range matrix {
		t.Run("engine-"+e.version.Name, func(t *testing.T) {
			testEngines.Store(t.Name(), e)
			t.Cleanup(func() { testEngines.Delete(t.Name()) })
			f(t)
		})
	}
}

// engineOf returns the engine t runs on: the one onEngines gave it or an
// ancestor, else the run's own.
func engineOf(t testing.TB) *suiteEngine {
	for name := t.Name(); ; {
		if e, ok := testEngines.Load(name); ok {
			return e.(*suiteEngine)
		}
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return matrix[0]
		}
		name = name[:i]
	}
}

// env is what a docker or secretd command needs in its environment to
// reach the engine.
func (e *suiteEngine) env() []string {
	if e.host == "" {
		return nil
	}
	return []string{"DOCKER_HOST=" + e.host}
}

// dockerArgs is the docker CLI invocation for the engine.
func (e *suiteEngine) dockerArgs() []string {
	if e.host == "" {
		return []string{"docker"}
	}
	return []string{"docker", "-H", e.host}
}

// command is a docker command against the engine, for output a test
// streams (docker save).
func (e *suiteEngine) command(args ...string) *exec.Cmd {
	a := e.dockerArgs()
	return exec.Command(a[0], append(a[1:], args...)...)
}
