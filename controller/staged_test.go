package controller_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

// filledSpares are the spare mounts that hold files and are no task's:
// staged fills.
func filledSpares(t *testing.T, e *env) []string {
	t.Helper()
	var out []string
	for _, d := range spareDirs(t, e.root) {
		if slices.ContainsFunc(e.ctrl.Tasks(), func(k api.Task) bool { return k.Mount == d }) {
			continue
		}
		if entries, err := os.ReadDir(d); err == nil && len(entries) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// staged creates volume with decl as its option and waits for its staged
// fill, whose directory it returns.
func (e *env) staged(t *testing.T, volume, decl string) string {
	t.Helper()
	e.vols.full(volume, decl, "none")
	e.ctrl.WaitStaging()
	dirs := filledSpares(t, e)
	if e.ctrl.Staged() != 1 || len(dirs) != 1 {
		t.Fatalf("%d volumes staged, spares filled %v: want volume %s staged", e.ctrl.Staged(), dirs, volume)
	}
	return dirs[0]
}

// TestStagedFillIsTheMount: a volume created with its declaration is
// filled into a spare before its Mount, which hands that spare over as
// it is.
func TestStagedFillIsTheMount(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "a", "secret-a")
	e.secret(t, "b", "secret-b")
	e.keepSpares(t, 2)
	dir := e.staged(t, "v", "a;source=b,target=x,mode=0400")
	if got := readFiles(t, dir); got["a"] != "secret-a" || got["x"] != "secret-b" || len(got) != 2 {
		t.Fatalf("staged fill holds %v", got)
	}

	if got := e.mount(t, "v", "m1"); got != dir {
		t.Fatalf("mounted at %s, want the staged fill %s", got, dir)
	}
	if got := readFiles(t, dir); got["a"] != "secret-a" || got["x"] != "secret-b" || len(got) != 2 {
		t.Errorf("mount holds %v", got)
	}
	if fi, err := os.Stat(dir + "/x"); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("x: %v %v, want mode 0400", fi, err)
	}
	if n := e.ctrl.Staged(); n != 0 {
		t.Errorf("%d volumes still staged after the Mount", n)
	}
	tasks := e.ctrl.Tasks()
	if len(tasks) != 1 || tasks[0].Mount != dir || len(tasks[0].Secrets) != 2 {
		t.Fatalf("tasks %+v, want the one mount at %s", tasks, dir)
	}
	// The task knows the versions it holds: a rotation finds it, as any.
	if _, err := e.store.Update("a", []byte("secret-a2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	sec, _ := e.store.Get("a")
	if _, err := e.ctrl.Rotate(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	if got := readFiles(t, dir); got["a"] != "secret-a2" {
		t.Errorf("after the rotation the mount holds %v", got)
	}
	if err := e.ctrl.Unmount("v", "m1"); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, dir)
}

// TestStagedFillSeesWritesBeforeItsMount: whatever changed between the
// fill and the Mount reaches the container: a new version, a secret
// removed (the Mount fails, and leaves nothing mounted), a locked store.
func TestStagedFillSeesWritesBeforeItsMount(t *testing.T) {
	t.Run("new version", func(t *testing.T) {
		e := newEnv(t, time.Nanosecond)
		e.secret(t, "a", "old")
		e.secret(t, "b", "secret-b")
		e.keepSpares(t, 2)
		dir := e.staged(t, "v", "a;b")
		if _, err := e.store.Update("a", []byte("new"), 0, nil); err != nil {
			t.Fatal(err)
		}
		if got := e.mount(t, "v", "m1"); got != dir {
			t.Fatalf("mounted at %s, want the staged fill %s rewritten", got, dir)
		}
		if got := readFiles(t, dir); got["a"] != "new" || got["b"] != "secret-b" || len(got) != 2 {
			t.Errorf("mount holds %v, want the new version of a", got)
		}
		if v := e.ctrl.Tasks()[0].Secrets; v[0].Version != 2 {
			t.Errorf("task holds %+v, want a at version 2", v)
		}
	})
	t.Run("pinned version", func(t *testing.T) {
		e := newEnv(t, time.Nanosecond)
		e.secret(t, "a", "one")
		if _, err := e.store.Update("a", []byte("two"), 0, nil); err != nil {
			t.Fatal(err)
		}
		e.keepSpares(t, 2)
		dir := e.staged(t, "v", "a@1")
		if _, err := e.store.Update("a", []byte("three"), 0, nil); err != nil {
			t.Fatal(err)
		}
		e.mount(t, "v", "m1")
		if got := readFiles(t, dir); got["a"] != "one" {
			t.Errorf("mount holds %v, want version 1", got)
		}
	})
	t.Run("secret removed", func(t *testing.T) {
		e := newEnv(t, time.Nanosecond)
		e.secret(t, "a", "secret-a")
		e.keepSpares(t, 2)
		dir := e.staged(t, "v", "a")
		if _, err := e.store.Remove("a", nil); err != nil {
			t.Fatal(err)
		}
		_, err := e.ctrl.Mount(context.Background(), "v", "m1")
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "'a'") {
			t.Fatalf("Mount: %v, want secret a not found", err)
		}
		gone(t, e.root, dir)
		if left := filledSpares(t, e); len(left) != 0 {
			t.Errorf("spares still filled: %v", left)
		}
		if tasks := e.ctrl.Tasks(); len(tasks) != 0 {
			t.Errorf("tasks %+v after a refused Mount", tasks)
		}
	})
	t.Run("store locked", func(t *testing.T) {
		e := newLockableEnv(t)
		e.secret(t, "a", "secret-a")
		e.keepSpares(t, 2)
		dir := e.staged(t, "v", "a")
		if err := e.store.Lock(); err != nil {
			t.Fatal(err)
		}
		_, err := e.ctrl.Mount(context.Background(), "v", "m1")
		if !errors.Is(err, store.ErrLocked) {
			t.Fatalf("Mount of a locked store: %v, want locked", err)
		}
		gone(t, e.root, dir)
	})
}

// newLockableEnv is newEnv over a new autolocked store, unlocked as a
// new store opens.
func newLockableEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, time.Nanosecond)
	b, err := bolt.Open(filepath.Join(t.TempDir(), "locked.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := store.Open(b, store.Config{Autolock: true})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e.store, e.cfg.Store = s, s
	if e.ctrl, err = newController(t, e.cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestStagedFillIsWiped: a staged fill no Mount takes is wiped when its
// time runs out, when its volume is removed or its grants change, and
// when the daemon stops.
func TestStagedFillIsWiped(t *testing.T) {
	t.Run("its time runs out", func(t *testing.T) {
		e := newEnv(t, time.Nanosecond)
		e.secret(t, "a", "secret-a")
		e.keepSpares(t, 2)
		e.ctrl.SetStagedTTL(50 * time.Millisecond)
		dir := e.staged(t, "v", "a")
		waitFor(t, "the staged fill to be wiped", func() bool {
			_, err := os.Lstat(dir)
			return e.ctrl.Staged() == 0 && errors.Is(err, os.ErrNotExist)
		})
		gone(t, e.root, dir)
		// Its Mount, later, fills a spare as usual.
		got := e.mount(t, "v", "m1")
		if got == dir || readFiles(t, got)["a"] != "secret-a" {
			t.Errorf("mounted %s holding %v", got, readFiles(t, got))
		}
	})
	t.Run("its volume is removed", func(t *testing.T) {
		e := newEnv(t, time.Nanosecond)
		e.secret(t, "a", "secret-a")
		e.keepSpares(t, 2)
		dir := e.staged(t, "v", "a")
		if err := e.ctrl.RemoveVolume("v"); err != nil {
			t.Fatal(err)
		}
		if e.ctrl.Staged() != 0 {
			t.Error("still staged")
		}
		gone(t, e.root, dir)
	})
	t.Run("its grants change", func(t *testing.T) {
		e := newEnv(t, time.Nanosecond)
		e.secret(t, "a", "secret-a")
		e.secret(t, "b", "secret-b")
		e.keepSpares(t, 3)
		// A running container mounts v1; v2, its second volume, is
		// staged for a start to come.
		e.vols.full("v1", "a", "none")
		d1 := e.mount(t, "v1", "m1")
		dir := e.staged(t, "v2", "a")
		c := ctr("id-c", "c", container.StateRunning, 1, "", "v1="+d1, "v2")
		c.Mounts[1].Destination = "/etc/app"
		e.engine.Set(c)
		if _, err := e.ctrl.UpdateContainer(context.Background(), "c", api.ContainerUpdateRequest{SecretRm: []string{"a"}, Volume: "v2"}); err != nil {
			t.Fatal(err)
		}
		if e.ctrl.Staged() != 0 {
			t.Error("still staged after a revoke")
		}
		gone(t, e.root, dir)
		d2 := e.mount(t, "v2", "m2")
		if got := readFiles(t, d2); len(got) != 0 {
			t.Errorf("v2 mounted %v after a was revoked from it", got)
		}
	})
	t.Run("the daemon stops", func(t *testing.T) {
		e := newEnv(t, time.Nanosecond)
		e.secret(t, "a", "secret-a")
		cfg := e.cfg
		cfg.Spares = 2
		c, err := newController(t, cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); c.KeepSpares(ctx) }()
		waitFor(t, "the spares", func() bool { return spareCount(c) == 2 })
		if err := c.CreateVolume("v", map[string]string{controller.OptionSecrets: "a", controller.OptionOnUpdate: "none"}); err != nil {
			t.Fatal(err)
		}
		c.WaitStaging()
		if c.Staged() != 1 {
			t.Fatal("not staged")
		}
		cancel()
		<-done
		if left := mountsUnder(t, e.root); len(left) != 0 {
			t.Errorf("mounts after KeepSpares returned: %v", left)
		}
	})
}

// TestStagingOnlyWhatTheStoreHolds: a template's rendering and a driver
// secret's value are each container's, read at its Mount; a volume that
// declares one is not staged.
func TestStagingOnlyWhatTheStoreHolds(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "a", "secret-a")
	if _, err := e.store.Create(store.Spec{Name: "t", Data: []byte("{{ .Service.Name }}"), Template: store.TemplateGolang}); err != nil {
		t.Fatal(err)
	}
	e.keepSpares(t, 2)
	e.vols.full("v", "a;t", "none")
	e.ctrl.WaitStaging()
	if n := e.ctrl.Staged(); n != 0 {
		t.Errorf("%d volumes staged, want none: t is a template", n)
	}
	if dirs := filledSpares(t, e); len(dirs) != 0 {
		t.Errorf("spares filled: %v", dirs)
	}
}

// TestStagedAtTheCreateEvent: a volume declared by its container's label
// is staged once the create event bound it; the Mount takes the fill.
func TestStagedAtTheCreateEvent(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "a", "secret-a")
	e.keepSpares(t, 2)
	e.vols.anon("vol")
	s := e.run(t)
	c := ctr("id-c", "c", container.StateCreated, 1, "a", "vol")
	e.engine.Set(c)
	s.Send(t, containerCreate("id-c", c.Labels))
	waitFor(t, "the volume to be staged", func() bool { return len(filledSpares(t, e)) == 1 })
	e.ctrl.WaitStaging()
	dir := filledSpares(t, e)[0]
	if got := e.mount(t, "vol", "m1"); got != dir {
		t.Fatalf("mounted at %s, want the staged fill %s", got, dir)
	}
	if got := readFiles(t, dir); got["a"] != "secret-a" || len(got) != 1 {
		t.Errorf("mount holds %v", got)
	}
	if tasks := e.ctrl.Tasks(); len(tasks) != 1 || !slices.ContainsFunc(tasks[0].Secrets, func(s api.TaskSecret) bool { return s.Name == "a" }) {
		t.Errorf("tasks %+v", tasks)
	}
}

// TestStagingNeedsSpares: with no spares kept (--spare-mounts 0), nothing
// is filled early and the Mount does it all.
func TestStagingNeedsSpares(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "a", "secret-a")
	e.keepSpares(t, 0)
	e.vols.full("v", "a", "none")
	e.ctrl.WaitStaging()
	if n := e.ctrl.Staged(); n != 0 {
		t.Errorf("%d volumes staged with no spares", n)
	}
	if got := readFiles(t, e.mount(t, "v", "m1")); got["a"] != "secret-a" {
		t.Errorf("mount holds %v", got)
	}
}

// TestStagedFillWipedAfterACrash: a staged fill has no task record, so
// the next daemon's resync wipes what a killed one left.
func TestStagedFillWipedAfterACrash(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "a", "secret-a")
	e.keepSpares(t, 2)
	dir := e.staged(t, "v", "a")

	next, err := newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, dir)
}
