package daemon

import (
	"context"
	"log/slog"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/tmpfs"
)

// logNoswap probes, under the mount root, whether secrets mounts can use
// noswap, and says so at start: a secret written to a swap device outlives
// the container and the host's reboot. Every later Mount whose probe could
// not run, and so goes without noswap, is logged too.
func logNoswap(log *slog.Logger, mountRoot string) {
	tmpfs.OnNoswapProbeError(func(dir string, err error) {
		log.Warn("secrets mount made without noswap: the probe for it could not run, so whether the kernel has noswap is unknown", "mount", dir, "err", err)
	})
	ok, err := tmpfs.ProbeNoswap(mountRoot)
	swap, serr := tmpfs.SwapActive()
	level, msg, attrs := noswapReport(ok, err, swap, serr)
	if err != nil {
		attrs = append(attrs, slog.String("mount_root", mountRoot))
	}
	log.LogAttrs(context.Background(), level, msg, attrs...)
}

// noswapReport words what the probe found. It warns only when noswap is
// missing and swap is on (or unknown), since without swap there is nothing
// to leak to.
func noswapReport(ok bool, err error, swap bool, serr error) (slog.Level, string, []slog.Attr) {
	switch {
	case err != nil:
		return slog.LevelWarn, "cannot tell whether tmpfs supports noswap: secrets mounts go without it until a probe works", []slog.Attr{slog.Any("err", err)}
	case ok:
		return slog.LevelInfo, "secrets mounts use noswap: their pages never reach swap", nil
	case serr != nil:
		return slog.LevelWarn, "secrets mounts cannot use noswap (it needs Linux 6.4 or later), and whether swap is on is unknown", []slog.Attr{slog.Any("err", serr)}
	case swap:
		return slog.LevelWarn, "secrets mounts cannot use noswap (it needs Linux 6.4 or later) and swap is on: secrets may be written to the swap device; turn swap off (swapoff -a) or upgrade the kernel", nil
	}
	return slog.LevelInfo, "secrets mounts cannot use noswap (it needs Linux 6.4 or later); swap is off, so secrets stay in memory", nil
}

// noswapStatus fills the noswap fields of `secretd status`: whether mounts
// use noswap, whether swap is on, and why the probe could not run.
func noswapStatus(s *api.Status, mountRoot string) {
	var err error
	s.Noswap, err = tmpfs.ProbeNoswap(mountRoot)
	if err != nil {
		s.NoswapError = err.Error()
	}
	s.SwapOn, _ = tmpfs.SwapActive()
}
