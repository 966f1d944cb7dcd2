// Package bench measures secretd against the real Docker Engine: what a
// container start costs with secrets, how fast Mount answers, how fast
// rotations reach containers. Run with `make bench`; results and their
// history are in docs/benchmarks.md.
package bench

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/secretd/secretd/secretdtest"
)

var (
	binary string
	// runEngine is the run's dockerd, the one DOCKER_HOST names.
	runEngine *secretdtest.Engine
)

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.bench"); f == nil || f.Value.String() == "" {
		// `make test` runs every package: without -bench there is nothing
		// here to run, and nothing may touch the host's engine.
		os.Exit(m.Run())
	}
	// Measured on an engine of the run's own, as the e2e suite runs: the
	// host's engine never learns a benchmark's volume driver.
	_, self, _, _ := runtime.Caller(0)
	os.Exit(secretdtest.Isolate(m, secretdtest.IsolateOptions{
		Name:   "bench",
		Module: filepath.Dir(filepath.Dir(self)),
		// Container starts cost what they cost on the host.
		HostStorageDriver: true,
		Setup: func(r *secretdtest.Isolated) error {
			binary, runEngine = r.Binary, r.Engine
			return nil
		},
	}))
}

func docker(tb testing.TB, args ...string) string {
	tb.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("docker %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// daemonOptions start a daemon as a host runs it: its mount root on a
// tmpfs, as /run/secretd is where /run is tmpfs, and at the priority the
// shipped systemd unit gives it (a cgroup with its CPUWeight, its Nice).
func daemonOptions(tb testing.TB) secretdtest.Options {
	opts := secretdtest.Options{Binary: binary, TmpfsMountRoot: true,
		Nice: unitSetting(tb, "Nice"), CPUWeight: unitSetting(tb, "CPUWeight")}
	// SECRETD_BENCH_CPU_WEIGHT overrides the unit's weight (0: the
	// daemon stays in the bench's cgroup), to measure what it changes.
	if v, ok := os.LookupEnv("SECRETD_BENCH_CPU_WEIGHT"); ok {
		w, err := strconv.Atoi(v)
		if err != nil {
			tb.Fatalf("SECRETD_BENCH_CPU_WEIGHT=%s: %v", v, err)
		}
		opts.CPUWeight = w
	}
	// Space-separated NAME=VALUE pairs for the daemon's environment alone
	// (GODEBUG=gctrace=1 ...): the bench's dockerd and docker commands
	// would read them too.
	opts.Env = strings.Fields(os.Getenv("SECRETD_BENCH_DAEMON_ENV"))
	return opts
}

// unitSetting is the number set as key= in deploy/systemd/secretd.service,
// or 0.
func unitSetting(tb testing.TB, key string) int {
	unit, err := os.ReadFile(filepath.Join("..", "deploy", "systemd", "secretd.service"))
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(string(unit), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				tb.Fatalf("secretd.service: %s=%s: %v", key, v, err)
			}
			return n
		}
	}
	return 0
}
