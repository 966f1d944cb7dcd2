package controller_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/enginesim"
	"github.com/secretd/secretd/internal/enginetest"
)

// twoVolumes runs a container "two" with volume v1 at /run/secrets
// (declaring a and b) and v2 at /etc/app (declaring c), both mounted.
func twoVolumes(t *testing.T, e *env) (d1, d2 string) {
	t.Helper()
	for _, n := range []string{"a", "b", "c", "other"} {
		e.secret(t, n, "secret-"+n)
	}
	e.vols.set("v1", "a;b")
	e.vols.set("v2", "c")
	d1, d2 = e.mount(t, "v1", "m1"), e.mount(t, "v2", "m2")
	two := ctr("id-two", "two", container.StateRunning, 1, "", "v1="+d1, "v2="+d2)
	two.Mounts[1].Destination = "/etc/app"
	e.engine.Set(two)
	return d1, d2
}

func update(t *testing.T, e *env, req api.ContainerUpdateRequest) {
	t.Helper()
	if _, err := e.ctrl.UpdateContainer(context.Background(), "two", req); err != nil {
		t.Fatalf("update %+v: %v", req, err)
	}
}

func fileSet(t *testing.T, dir string) []string {
	t.Helper()
	return slices.Sorted(maps.Keys(readFiles(t, dir)))
}

func wantFiles(t *testing.T, what, dir string, want ...string) {
	t.Helper()
	if got := fileSet(t, dir); !slices.Equal(got, want) {
		t.Errorf("%s: files %v, want %v", what, got, want)
	}
}

// TestGrantRevokePerVolume: with two secretd volumes in one container, a
// revoke acts on the volume that holds the secret and a grant on the one
// at /run/secrets or the one named; the other volume is left as it is.
// (The old code applied the first volume's declaration to every mount: a
// secret of the second volume could not be revoked, and a grant wrote the
// same set into both.)
func TestGrantRevokePerVolume(t *testing.T) {
	e := newEnv(t, time.Hour)
	d1, d2 := twoVolumes(t, e)
	update(t, e, api.ContainerUpdateRequest{SecretRm: []string{"c"}})
	wantFiles(t, "v1 after rm c", d1, "a", "b")
	wantFiles(t, "v2 after rm c", d2)
	update(t, e, api.ContainerUpdateRequest{SecretAdd: []string{"other"}})
	wantFiles(t, "v1 after add other", d1, "a", "b", "other")
	wantFiles(t, "v2 after add other", d2)
	update(t, e, api.ContainerUpdateRequest{SecretAdd: []string{"c"}, Volume: "v2"})
	wantFiles(t, "v2 after add c to it", d2, "c")
	update(t, e, api.ContainerUpdateRequest{SecretRm: []string{"a"}})
	wantFiles(t, "v1 after rm a", d1, "b", "other")
	wantFiles(t, "v2 after rm a", d2, "c")
	if _, err := e.ctrl.UpdateContainer(context.Background(), "two", api.ContainerUpdateRequest{SecretRm: []string{"a"}}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("revoke of a secret no volume holds: %v", err)
	}
	if _, err := e.ctrl.UpdateContainer(context.Background(), "two", api.ContainerUpdateRequest{SecretAdd: []string{"a"}, Volume: "nope"}); err == nil || !strings.Contains(err.Error(), "does not mount volume nope") {
		t.Errorf("grant to a volume it does not mount: %v", err)
	}
	e.ctrl.Unmount("v1", "m1")
	e.ctrl.Unmount("v2", "m2")
}

// TestGrantAfterRevoke: a grant of a revoked source undoes the revoke (no
// duplicate target), a grant at another target brings only that target
// (no ghost of the old one), and revoking every secret leaves an empty
// mount that still mounts again on a restart.
func TestGrantAfterRevoke(t *testing.T) {
	for _, volumes := range []int{1, 2} {
		t.Run(map[int]string{1: "one volume", 2: "two volumes"}[volumes], func(t *testing.T) {
			e := newEnv(t, time.Hour)
			d1, d2 := twoVolumes(t, e)
			if volumes == 1 {
				e.ctrl.Unmount("v2", "m2")
				e.engine.Set(ctr("id-two", "two", container.StateRunning, 1, "", "v1="+d1))
			}
			update(t, e, api.ContainerUpdateRequest{SecretRm: []string{"a"}})
			update(t, e, api.ContainerUpdateRequest{SecretAdd: []string{"a"}})
			wantFiles(t, "rm a then add a", d1, "a", "b")
			update(t, e, api.ContainerUpdateRequest{SecretRm: []string{"a"}})
			update(t, e, api.ContainerUpdateRequest{SecretAdd: []string{"source=a,target=renamed"}})
			wantFiles(t, "rm a then add a as renamed", d1, "b", "renamed")
			update(t, e, api.ContainerUpdateRequest{SecretRm: []string{"a", "b"}})
			wantFiles(t, "rm of every secret", d1)
			if err := e.ctrl.Unmount("v1", "m1"); err != nil {
				t.Fatal(err)
			}
			d := e.mount(t, "v1", "m1b") // docker restart
			wantFiles(t, "restart with every secret revoked", d)
			if volumes == 2 {
				wantFiles(t, "the other volume", d2, "c")
			}
			e.engine.Set(ctr("id-two", "two", container.StateRunning, 1, "", "v1="+d))
			update(t, e, api.ContainerUpdateRequest{SecretAdd: []string{"b"}})
			wantFiles(t, "grant after revoking all", d, "b")
			e.ctrl.Unmount("v1", "m1b")
			e.ctrl.Unmount("v2", "m2")
		})
	}
}

// TestSharedVolumeUpdate: a change to a volume other containers use is
// refused, naming them, unless asked for; grants go with the volume, not
// with a container.
func TestSharedVolumeUpdate(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.secret(t, "a", "x")
	e.secret(t, "b", "y")
	e.vols.set("shared", "a")
	d1 := e.mount(t, "shared", "m1")
	e.engine.Set(ctr("id-one", "one", container.StateRunning, 1, "", "shared="+d1), ctr("id-peer", "peer", container.StateExited, 2, "", "shared"))
	_, err := e.ctrl.UpdateContainer(context.Background(), "one", api.ContainerUpdateRequest{SecretAdd: []string{"b"}})
	if err == nil || !strings.Contains(err.Error(), "shared with container peer") || !strings.Contains(err.Error(), "--shared") {
		t.Errorf("shared volume: %v", err)
	}
	wantFiles(t, "after the refusal", d1, "a")
	if _, err := e.ctrl.UpdateContainer(context.Background(), "one", api.ContainerUpdateRequest{SecretAdd: []string{"b"}, Shared: true}); err != nil {
		t.Fatal(err)
	}
	wantFiles(t, "after --shared", d1, "a", "b")
	// The container goes; the grant stays with the volume.
	e.ctrl.Unmount("shared", "m1")
	e.engine.Set(ctr("id-peer", "peer", container.StateExited, 2, "", "shared"))
	d := e.mount(t, "shared", "m2")
	wantFiles(t, "peer's start", d, "a", "b")
	e.ctrl.Unmount("shared", "m2")
	// Removing the volume drops its grants.
	if err := e.ctrl.RemoveVolume("shared"); err != nil {
		t.Fatal(err)
	}
	e.vols.set("shared", "a")
	if v, _ := e.ctrl.Volume("shared"); len(v.Grants)+len(v.Revokes) != 0 {
		t.Errorf("a new volume of the same name inherited grants: %+v", v)
	}
}

// TestUnmountBeforeAdoption: an Unmount that comes after a daemon restart,
// before a resync adopted the mount, finds the mount by its ID in the
// spare directory that holds it.
func TestUnmountBeforeAdoption(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.secret(t, "a", "x")
	e.keepSpares(t, 1)
	e.vols.set("vol", "a")
	dir := e.mount(t, "vol", "m1")
	if !strings.Contains(dir, "spare.") {
		t.Fatalf("mount %s did not fill a spare", dir)
	}
	next, err := newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Unmount("vol", "m1"); err != nil {
		t.Fatal(err)
	}
	for _, m := range mountsUnder(t, e.root) {
		if m == dir {
			t.Errorf("the Unmount left the spare-based mount %s mounted", dir)
		}
	}
}

// TestTaskFieldsUnderRace: rotations, live grants, renames and start
// events touch the same tasks at once; -race reports any field read
// outside the lock.
func TestTaskFieldsUnderRace(t *testing.T) { eachProfile(t, testTaskFieldsUnderRace) }

func testTaskFieldsUnderRace(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, time.Hour)
	sec := e.secret(t, "a", "x")
	e.secret(t, "b", "y")
	e.vols.set("vol", "a")
	s := e.run(t)
	dir := e.mount(t, "vol", "m1")
	e.engine.Set(ctr("id-c", "c", container.StateRunning, 1, "", "vol="+dir))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 20 {
			s.Send(t, volumeMount("vol", "id-c"))
			s.Send(t, containerStart("id-c", "c", map[string]string{controller.LabelOnUpdate: "signal:SIGHUP"}))
			s.Send(t, renamed("id-c", "c"+string(rune('a'+i))))
		}
	}()
	for i := range 10 {
		sec, err := e.store.Update(sec.Name, []byte{'v', byte('0' + i)}, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.ctrl.Rotate(context.Background(), sec); err != nil {
			t.Error(err)
		}
		e.ctrl.Tasks()
	}
	<-done
	e.ctrl.Unmount("vol", "m1")
}

func renamed(id, name string) events.Message {
	return enginetest.ContainerEvent(events.ActionRename, id, map[string]string{"name": name})
}
