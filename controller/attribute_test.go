package controller_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/enginesim"
	"github.com/secretd/secretd/internal/enginetest"
)

// run starts the controller's event loop and returns its first stream,
// once the first resync is done.
func (e *env) run(t *testing.T) *enginetest.Stream {
	t.Helper()
	e.start(t)
	s := e.engine.Next(t)
	waitFor(t, "the first resync", func() bool { return resyncs(e.ctrl) >= 1 })
	return s
}

func volumeMount(volume, containerID string) events.Message {
	return enginetest.VolumeMount(volume, containerID, driverName)
}

var containerStart = enginetest.ContainerStart

// TestVolumeDeclarationNeedsNoEngine: a volume that carries its
// declaration and its on-update (as `secretd run` makes them) mounts
// without asking the engine; the volume mount event and the start event
// that follow name the container.
func TestVolumeDeclarationNeedsNoEngine(t *testing.T) {
	eachProfile(t, testVolumeDeclarationNeedsNoEngine)
}

func testVolumeDeclarationNeedsNoEngine(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, time.Hour)
	e.secret(t, "a", "secret-a")
	e.vols.full("optvol", "source=a,target=db", "signal:SIGHUP")
	s := e.run(t)
	e.engine.Set(ctr("id-opt", "opt", container.StateCreated, 1, "", "optvol"))

	before := e.engine.Counts().VolumeLists
	dir := e.mount(t, "optvol", "m1")
	if n := e.engine.Counts().VolumeLists - before; n != 0 {
		t.Errorf("the Mount asked the engine %d times", n)
	}
	if got := readFiles(t, dir); got["db"] != "secret-a" {
		t.Fatalf("mounted %v", got)
	}
	if tasks := e.ctrl.Tasks(); len(tasks) != 1 || tasks[0].ContainerID != "" {
		t.Fatalf("before the events: %+v", tasks)
	}

	s.Send(t, volumeMount("optvol", "id-opt"))
	s.Send(t, containerStart("id-opt", "opt", map[string]string{controller.LabelOnUpdate: "signal:SIGHUP"}))
	s.Sync(t)
	tasks := e.ctrl.Tasks()
	if len(tasks) != 1 || tasks[0].ContainerID != "id-opt" || tasks[0].ContainerName != "opt" {
		t.Fatalf("after the events: %+v", tasks)
	}
	rec, err := os.ReadFile(filepath.Join(e.root, "m1.task"))
	if err != nil || !strings.Contains(string(rec), `"container_id":"id-opt"`) {
		t.Errorf("task record %s, %v: want the container", rec, err)
	}
	// A resync keeps what the events taught.
	e.engine.Set(ctr("id-opt", "opt", container.StateRunning, 1, "", "optvol="+dir))
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tasks := e.ctrl.Tasks(); len(tasks) != 1 || tasks[0].ContainerName != "opt" {
		t.Errorf("after a resync: %+v", tasks)
	}
}

// TestResyncNamesUnclaimedMount: with the events missed, a resync finds
// the container of a mount made without asking the engine.
func TestResyncNamesUnclaimedMount(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.secret(t, "a", "secret-a")
	e.vols.set("optvol", "source=a,target=db")
	dir := e.mount(t, "optvol", "m1")
	e.engine.Set(ctr("id-opt", "opt", container.StateRunning, 1, "", "optvol="+dir))
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if tasks := e.ctrl.Tasks(); len(tasks) != 1 || tasks[0].ContainerID != "id-opt" || tasks[0].ContainerName != "opt" {
		t.Errorf("after a resync: %+v", tasks)
	}
}

// TestRevokeDuringUnclaimedMount: a live revoke belongs to the volume, so
// it reaches a mount whose container is not known yet at once, and the
// next Mount of the volume, which asks the engine nothing.
func TestRevokeDuringUnclaimedMount(t *testing.T) { eachProfile(t, testRevokeDuringUnclaimedMount) }

func testRevokeDuringUnclaimedMount(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, time.Hour)
	e.secret(t, "a", "secret-a")
	e.secret(t, "b", "secret-b")
	e.vols.set("optvol", "a;b")
	e.run(t)
	dir := e.mount(t, "optvol", "m1")
	e.engine.Set(ctr("id-opt", "opt", container.StateCreated, 1, "", "optvol="+dir))
	if _, err := e.ctrl.UpdateContainer(context.Background(), "opt", api.ContainerUpdateRequest{SecretRm: []string{"b"}}); err != nil {
		t.Fatal(err)
	}
	if got := readFiles(t, dir); len(got) != 1 || got["a"] != "secret-a" {
		t.Fatalf("after the revoke: %v, want a only", got)
	}
	before := e.engine.Counts().VolumeLists
	dir2 := e.mount(t, "optvol", "m2")
	if e.engine.Counts().VolumeLists != before {
		t.Error("a Mount of a bound volume asked the engine")
	}
	if got := readFiles(t, dir2); len(got) != 1 || got["a"] != "secret-a" {
		t.Errorf("restart after the revoke: %v, want a only", got)
	}
	e.ctrl.Unmount("optvol", "m2")
}

// TestUsersNameStartingContainers: a mount whose container's name no event
// has brought yet is named from the engine's list in in-use answers, not
// by an ID or left blank.
func TestUsersNameStartingContainers(t *testing.T) { eachProfile(t, testUsersNameStartingContainers) }

func testUsersNameStartingContainers(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, time.Hour)
	sec := e.secret(t, "a", "x")
	e.vols.set("v1", "a")
	e.vols.set("v2", "a")
	s := e.run(t)
	d1 := e.mount(t, "v1", "m1")
	d2 := e.mount(t, "v2", "m2")
	e.engine.Set(ctr("id-one", "one", container.StateCreated, 1, "", "v1="+d1), ctr("id-two", "two", container.StateCreated, 2, "", "v2="+d2))
	// v1's volume mount event came (container ID known), no start event
	// yet; v2 has had no event at all.
	s.Send(t, volumeMount("v1", "id-one"))
	s.Sync(t)
	e.engine.Set(ctr("id-one", "one", container.StateCreated, 1, "", "v1="+d1), ctr("id-two", "two", container.StateCreated, 2, "", "v2="+d2),
		ctr("id-x", "unrelated", container.StateExited, 3, ""))
	users, err := e.ctrl.Users(context.Background(), sec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(users, ",") != "one,two" {
		t.Errorf("users %v, want one and two", users)
	}
	e.ctrl.Unmount("v1", "m1")
	e.ctrl.Unmount("v2", "m2")
}
