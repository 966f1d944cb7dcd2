package controller_test

import (
	"context"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/internal/store"
)

// TestRotationFromTheStoresHook: a rotation the store's update hook runs
// (as the daemon wires it) writes the version announced into the mounts,
// each update in turn, and one run outside the hook reads the store.
func TestRotationFromTheStoresHook(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "db", "v1")
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "db", "vweb"))
	dir := e.mount(t, "vweb", "mweb")
	ctx := context.Background()
	var rotated []int
	e.store.OnUpdate(func(sec store.Secret) {
		rot, err := e.ctrl.Rotate(ctx, sec)
		if err != nil {
			t.Error(err)
		}
		rotated = append(rotated, rot.Updated)
	})
	for _, v := range []string{"v2", "v3"} {
		if _, err := e.store.Update("db", []byte(v), 0, nil); err != nil {
			t.Fatal(err)
		}
		if got := readFiles(t, dir)["db"]; got != v {
			t.Fatalf("after the update to %s the mount holds %q", v, got)
		}
	}
	sec, err := e.store.Get("db")
	if err != nil {
		t.Fatal(err)
	}
	if rot, err := e.ctrl.Rotate(ctx, sec); err != nil || rot.Updated != 0 || readFiles(t, dir)["db"] != "v3" {
		t.Fatalf("a rotation outside the hook: %+v %v, mount %q", rot, err, readFiles(t, dir)["db"])
	}
	if len(rotated) != 2 || rotated[0] != 1 || rotated[1] != 1 {
		t.Fatalf("the hook's rotations updated %v mounts, want 1 each", rotated)
	}
	e.ctrl.Unmount("vweb", "mweb")
}
