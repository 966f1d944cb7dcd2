package controller_test

import (
	"context"
	"encoding/json"
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
	"github.com/secretd/secretd/tmpfs"
)

// keepSpares replaces the env's controller with one that keeps n spares,
// and runs KeepSpares until the test ends.
func (e *env) keepSpares(t *testing.T, n int) {
	t.Helper()
	cfg := e.cfg
	cfg.Spares = n
	var err error
	if e.ctrl, err = newController(t, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ctrl.KeepSpares(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the spares to be ready", func() bool { return spareCount(e.ctrl) == n })
}

func spareCount(c *controller.Controller) int {
	var st api.Status
	c.Stats(&st)
	return st.SpareMounts
}

func spareDirs(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, m := range mountsUnder(t, root) {
		if strings.HasPrefix(filepath.Base(m), "spare.") {
			out = append(out, m)
		}
	}
	return out
}

func TestMountFillsASpare(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	e.keepSpares(t, 2)
	spares := spareDirs(t, e.root)
	if len(spares) != 2 {
		t.Fatalf("spare mounts %v, want 2", spares)
	}
	for _, d := range spares {
		if entries, err := os.ReadDir(d); err != nil || len(entries) != 0 {
			t.Errorf("spare %s holds %v (%v)", d, entries, err)
		}
	}

	e.engine.Set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
	dir := e.mount(t, "v1", "m1")
	if !slices.Contains(spares, dir) {
		t.Fatalf("mounted at %s, want one of the spares %v", dir, spares)
	}
	if got := readFiles(t, dir); got["s1"] != "one" || len(got) != 1 {
		t.Errorf("filled spare holds %v", got)
	}
	var rec struct {
		MountID string `json:"mount_id"`
		Volume  string `json:"volume"`
	}
	if b, err := os.ReadFile(dir + ".task"); err != nil || json.Unmarshal(b, &rec) != nil || rec.MountID != "m1" || rec.Volume != "v1" {
		t.Errorf("task record beside the spare: %+v (%v)", rec, err)
	}
	// The one taken is replaced.
	waitFor(t, "the spare to be replaced", func() bool { return spareCount(e.ctrl) == 2 })
	if n := len(mountsUnder(t, e.root)); n != 3 {
		t.Errorf("%d mounts, want the filled one and 2 spares", n)
	}

	// A resync that finds no container leaves free spares alone.
	e.engine.Set()
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, dir)
	if _, err := os.Stat(dir + ".task"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record of the wiped mount: %v", err)
	}
	if got := spareDirs(t, e.root); len(got) != 2 || spareCount(e.ctrl) != 2 {
		t.Errorf("after resync: spares %v, %d ready", got, spareCount(e.ctrl))
	}

	e.engine.Set(ctr("id2", "api", container.StateCreated, 2, "s1", "v2"))
	dir = e.mount(t, "v2", "m2")
	if err := e.ctrl.Unmount("v2", "m2"); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, dir)
	if _, err := os.Stat(dir + ".task"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record after Unmount: %v", err)
	}
}

func TestFailedMountWipesItsSpare(t *testing.T) {
	e := newEnv(t, 0)
	e.keepSpares(t, 1)
	spare := spareDirs(t, e.root)[0]
	e.engine.Set(ctr("id1", "web", container.StateCreated, 1, "missing", "v1"))
	if _, err := e.ctrl.Mount(context.Background(), "v1", "m1"); err == nil {
		t.Fatal("mount of a missing secret succeeded")
	}
	gone(t, e.root, spare)
	if _, err := os.Stat(spare + ".task"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record of the refused mount: %v", err)
	}
	if got := taskNames(e.ctrl); len(got) != 0 {
		t.Errorf("tasks after a refused mount: %v", got)
	}
	waitFor(t, "a new spare", func() bool { return spareCount(e.ctrl) == 1 })
}

// After a crash, a filled spare is adopted like any mount, by its record,
// and free spares of the dead daemon are wiped.
func TestRestartAdoptsFilledSpares(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "s1", "one")
	e.keepSpares(t, 1)
	e.engine.Set(ctr("id1", "web", container.StateCreated, 1, "s1", "v1"))
	dir := e.mount(t, "v1", "m1")
	// What a killed daemon leaves: a free spare it made.
	leftover := filepath.Join(e.root, "spare.0123456789abcdef")
	if err := tmpfs.Prepare(leftover); err != nil {
		t.Fatal(err)
	}

	next, err := newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.engine.SetState("id1", container.StateRunning)
	if err := next.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, leftover)
	tasks := next.Tasks()
	if len(tasks) != 1 || tasks[0].MountID != "m1" || tasks[0].Mount != dir || tasks[0].ContainerID != "id1" {
		t.Fatalf("tasks after restart: %+v", tasks)
	}
	if got := readFiles(t, dir); got["s1"] != "one" {
		t.Errorf("adopted spare holds %v", got)
	}
	if err := next.Unmount("v1", "m1"); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, dir)
}

func TestKeepSparesWipesThemOnStop(t *testing.T) {
	e := newEnv(t, 0)
	cfg := e.cfg
	cfg.Spares = 3
	c, err := newController(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.KeepSpares(ctx)
	}()
	waitFor(t, "3 spares", func() bool { return spareCount(c) == 3 })
	cancel()
	<-done
	if left := mountsUnder(t, e.root); len(left) != 0 {
		t.Errorf("mounts after KeepSpares returned: %v", left)
	}
	if spareCount(c) != 0 {
		t.Errorf("%d spares reported after stop", spareCount(c))
	}
}
