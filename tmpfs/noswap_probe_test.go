package tmpfs

import (
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMountSaysWhenNoswapProbeFails: when the probe for noswap cannot run
// at a Mount (here its mount call fails with EPERM), the Mount still
// succeeds without noswap, but says so: the hook hears of it with the
// mount and the reason, and NoswapProbeError reports it until a probe runs.
func TestMountSaysWhenNoswapProbeFails(t *testing.T) {
	base := testRoot(t)
	resetNoswap(t)
	probeMount = func(string, string, string, uintptr, string) error { return unix.EPERM }
	var heard []string
	var heardErr error
	OnNoswapProbeError(func(dir string, err error) { heard, heardErr = append(heard, dir), err })
	t.Cleanup(func() {
		probeMount = unix.Mount
		OnNoswapProbeError(nil)
		noswap.Lock()
		noswap.lastErr = nil
		noswap.Unlock()
	})
	dir := filepath.Join(base, "m")
	if err := Mount(dir, []File{{Path: "f", Data: []byte("x"), Mode: 0o444}}, Options{}); err != nil {
		t.Fatal(err)
	}
	defer Wipe(dir)
	if optSet(entryFor(t, dir).superOptions)["noswap"] {
		t.Error("the mount has noswap though its probe failed")
	}
	if len(heard) != 1 || heard[0] != dir || !errors.Is(heardErr, unix.EPERM) {
		t.Errorf("hook heard %v (%v), want the mount %s and EPERM", heard, heardErr, dir)
	}
	if err := NoswapProbeError(); !errors.Is(err, unix.EPERM) {
		t.Errorf("NoswapProbeError: %v, want EPERM", err)
	}
	// A probe that runs clears it.
	probeMount = unix.Mount
	if _, err := ProbeNoswap(base); err != nil {
		t.Fatal(err)
	}
	if err := NoswapProbeError(); err != nil {
		t.Errorf("after a probe ran: %v", err)
	}
}
