package daemon

import (
	"log/slog"

	"github.com/secretd/secretd/tmpfs"
)

// logNoswap probes, under the mount root, whether secrets mounts can use
// noswap, and says so at start: a secret written to a swap device outlives
// the container and the host's reboot. It warns only when noswap is missing
// and swap is on, since without swap there is nothing to leak to.
func logNoswap(log *slog.Logger, mountRoot string) {
	ok, err := tmpfs.ProbeNoswap(mountRoot)
	swap, serr := tmpfs.SwapActive()
	switch {
	case err != nil:
		log.Warn("cannot tell whether tmpfs supports noswap: secrets mounts go without it until a probe works", "mount_root", mountRoot, "err", err)
	case ok:
		log.Info("secrets mounts use noswap: their pages never reach swap")
		return
	case serr != nil:
		log.Warn("secrets mounts cannot use noswap (it needs Linux 6.4 or later), and whether swap is on is unknown", "err", serr)
	case swap:
		log.Warn("secrets mounts cannot use noswap (it needs Linux 6.4 or later) and swap is on: secrets may be written to the swap device; turn swap off (swapoff -a) or upgrade the kernel")
	default:
		log.Info("secrets mounts cannot use noswap (it needs Linux 6.4 or later); swap is off, so secrets stay in memory")
	}
}
