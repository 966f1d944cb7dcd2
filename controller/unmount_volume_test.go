package controller_test

import (
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// TestUnmountChecksVolume: an Unmount names a volume and a mount ID; a
// mount ID of another volume is refused and wipes nothing, whether the
// mount is a live task or, after a restart, only a record on disk. The
// right volume then unmounts it.
func TestUnmountChecksVolume(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	e.vols.anon("vol")
	e.vols.anon("other")
	e.engine.Set(ctr("id-a", "a", container.StateCreated, 1, "a", "vol"))
	dir := e.mount(t, "vol", "m1")

	err := e.ctrl.Unmount("other", "m1")
	if err == nil || !strings.Contains(err.Error(), `mount ID m1 belongs to volume "vol", not "other": nothing was unmounted`) {
		t.Fatalf("Unmount of another volume's mount ID: %v", err)
	}
	if got := readFiles(t, dir); got["a"] != "secret-a" {
		t.Fatalf("a refused Unmount touched the mount: %v", got)
	}

	// A daemon that has not adopted the mount yet finds it by its record.
	again, err := newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Unmount("other", "m1"); err == nil || !strings.Contains(err.Error(), `belongs to volume "vol"`) {
		t.Fatalf("Unmount from the record of another volume's mount ID: %v", err)
	}
	if got := readFiles(t, dir); got["a"] != "secret-a" {
		t.Fatalf("a refused Unmount touched the mount: %v", got)
	}
	if err := e.ctrl.Unmount("vol", "m1"); err != nil {
		t.Fatal(err)
	}
	if n := len(mountsUnder(t, e.root)); n != 0 {
		t.Errorf("%d mounts left after the right Unmount", n)
	}
}
