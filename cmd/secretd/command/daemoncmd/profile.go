package daemoncmd

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
)

// Environment variables that name a file for a CPU profile or an
// execution trace of the daemon's whole run, written when it stops: how the
// benchmarks find where the daemon's time goes (the trace also tells a
// Mount that waited for a core from one that waited in the kernel). "%p"
// in the path becomes the daemon's pid. SECRETD_HEAPPROFILE writes the
// live heap as the daemon stops, after a GC: what it still holds then.
// Unset, they cost nothing.
const (
	profileEnv = "SECRETD_CPUPROFILE"
	traceEnv   = "SECRETD_TRACE"
	heapEnv    = "SECRETD_HEAPPROFILE"
)

func profileCPU(log *slog.Logger) (stop func()) {
	stopProfile := record(log, profileEnv, pprof.StartCPUProfile, pprof.StopCPUProfile)
	stopTrace := record(log, traceEnv, trace.Start, trace.Stop)
	var heap io.Writer
	stopHeap := record(log, heapEnv, func(w io.Writer) error { heap = w; return nil }, func() {
		runtime.GC()
		pprof.WriteHeapProfile(heap)
	})
	return func() {
		stopHeap()
		stopTrace()
		stopProfile()
	}
}

func record(log *slog.Logger, env string, start func(io.Writer) error, stop func()) func() {
	path := os.Getenv(env)
	if path == "" {
		return func() {}
	}
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		if err = start(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		log.Warn("not recording", "env", env, "err", err)
		return func() {}
	}
	return func() {
		stop()
		f.Close()
	}
}
