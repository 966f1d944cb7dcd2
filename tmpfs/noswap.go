package tmpfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

var noswap struct {
	sync.Mutex
	probed bool
	ok     bool
	// lastErr is why the last probe could not run; nil once one ran.
	lastErr error
	// onProbeError hears of each Mount that went without noswap because
	// its probe could not run.
	onProbeError func(dir string, err error)
}

// probeMount is the probe's mount call; tests make it fail.
var probeMount = unix.Mount

// ProbeNoswap reports whether the kernel's tmpfs accepts "noswap" (Linux
// 6.4+), which keeps secrets out of swap. It mounts a throwaway read-only
// tmpfs in a fresh directory under root, because the option is advertised
// nowhere cheaper than the mount call itself; root is the mount root, the
// one place that exists and is writable wherever secretd runs (a FROM
// scratch image or a managed plugin has no /tmp). The first answer is kept
// for every later call. An error means the probe could not run at all;
// nothing is kept then, and Mount goes without noswap until a probe runs.
func ProbeNoswap(root string) (bool, error) {
	noswap.Lock()
	defer noswap.Unlock()
	if noswap.probed {
		return noswap.ok, nil
	}
	ok, err := probeNoswap(root)
	if err != nil {
		noswap.lastErr = err
		return false, err
	}
	noswap.probed, noswap.ok, noswap.lastErr = true, ok, nil
	return ok, nil
}

// NoswapProbeError is why the last probe for noswap could not run, or nil
// when one ran (its answer is then kept): while it is set, mounts go
// without noswap although the kernel may have it.
func NoswapProbeError() error {
	noswap.Lock()
	defer noswap.Unlock()
	return noswap.lastErr
}

// OnNoswapProbeError sets fn to hear of every Mount that goes without
// noswap because the probe for it could not run, so the daemon says so
// rather than leave the option out quietly.
func OnNoswapProbeError(fn func(dir string, err error)) {
	noswap.Lock()
	noswap.onProbeError = fn
	noswap.Unlock()
}

// noswapFor is ProbeNoswap for a Mount at dir: a probe that cannot run is
// reported to the OnNoswapProbeError hook, and the Mount goes without.
func noswapFor(dir string) bool {
	ok, err := ProbeNoswap(filepath.Dir(dir))
	if err != nil {
		noswap.Lock()
		fn := noswap.onProbeError
		noswap.Unlock()
		if fn != nil {
			fn(dir, err)
		}
	}
	return ok
}

// NoswapSupported reports the answer ProbeNoswap keeps. Before any probe
// ran it probes under the system's temporary directory, which a daemon never
// relies on: it probes under its mount root at start, and every Mount probes
// under its mount point's parent.
func NoswapSupported() bool {
	ok, _ := ProbeNoswap(os.TempDir())
	return ok
}

func probeNoswap(root string) (bool, error) {
	dir, err := os.MkdirTemp(root, ".secretd-noswap-probe-")
	if err != nil {
		return false, fmt.Errorf("probe for tmpfs noswap: %w", err)
	}
	defer os.Remove(dir)
	if err := probeMount("tmpfs", dir, "tmpfs", mountFlags|unix.MS_RDONLY, "size=4k,noswap"); err != nil {
		if errors.Is(err, unix.EINVAL) {
			return false, nil // the kernel does not know the option
		}
		return false, fmt.Errorf("probe for tmpfs noswap: mount at %s: %w", dir, err)
	}
	if _, err := unmount(dir); err != nil {
		return false, fmt.Errorf("probe for tmpfs noswap: %w", err)
	}
	return true, nil
}

// swapsPath lists the active swap areas, one a line after a header; the
// list is the host's even inside a container or a plugin.
const swapsPath = "/proc/swaps"

// SwapActive reports whether the host has any swap area in use, so a mount
// without noswap can be warned about only when it matters.
func SwapActive() (bool, error) {
	data, err := os.ReadFile(swapsPath)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", swapsPath, err)
	}
	return swapsListed(data), nil
}

// swapsListed reports whether /proc/swaps content lists an area below its
// header line.
func swapsListed(data []byte) bool {
	sc := bufio.NewScanner(bytes.NewReader(data))
	lines := 0
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) > 0 {
			lines++
		}
	}
	return lines > 1
}
