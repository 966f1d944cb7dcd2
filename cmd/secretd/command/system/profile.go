package system

import (
	"log/slog"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
)

// profileEnv names a file for a CPU profile of the daemon's whole run,
// written when it stops: how the benchmarks find where the daemon's time
// goes; "%p" in it becomes the daemon's pid. Unset, it costs nothing.
const profileEnv = "SECRETD_CPUPROFILE"

func profileCPU(log *slog.Logger) (stop func()) {
	path := os.Getenv(profileEnv)
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		log.Warn("CPU profile not started", "env", profileEnv, "err", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
