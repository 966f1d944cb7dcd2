package controller_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/audit"
)

// podmanMountID is the one mount ID Podman 4.3 sends in every Mount and
// Unmount of a plugin volume, as measured (the sha256 of "placeholder\n").
const podmanMountID = "2f73349cfc4630255319c6c8dfc1b46a8996ace9d14d8e07563b165915918ec2"

// podmanVolume creates a volume as Podman users do: its declaration and
// its on-update as options (a Podman Mount cannot learn them from labels).
func podmanVolume(t *testing.T, e *env, name, decl string) {
	t.Helper()
	if err := e.ctrl.CreateVolume(name, map[string]string{controller.OptionSecrets: decl, controller.OptionOnUpdate: "none"}); err != nil {
		t.Fatal(err)
	}
}

// podmanCtr is a container of Podman's: its volume's mount point is the
// shared mount, and it may ask for an on-update action.
func podmanCtr(id, name string, state container.ContainerState, volume, dir, onUpdate string) container.Summary {
	s := ctr(id, name, state, 1, "", volume+"="+dir)
	if onUpdate != "" {
		s.Labels[controller.LabelOnUpdate] = onUpdate
	}
	return s
}

func containerDie(id string) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: events.Actor{ID: id}}
}

// actions records the on-update signals and restarts asked for.
type actions struct {
	mu    sync.Mutex
	calls []string
}

func (a *actions) ContainerKill(_ context.Context, id, signal string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, "kill "+id+" "+signal)
	return nil
}

func (a *actions) ContainerRestart(_ context.Context, id string, _ container.StopOptions) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, "restart "+id)
	return nil
}

func (a *actions) done() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Clone(a.calls)
	slices.Sort(out)
	return out
}

// trailOf reads the audit trail as EVENT:CONTAINER lines.
func trailOf(t *testing.T, trail *syncBuffer) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(trail.String()), "\n") {
		if line == "" {
			continue
		}
		var ev audit.Event
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		out = append(out, ev.Event+":"+ev.Container)
	}
	return out
}

// TestPodmanVolumesMountAtOnce: Podman sends its one mount ID for every
// volume, so two volumes mounted at once are two mounts, each wiped by its
// own Unmount. Before, the second was refused as "already mounted".
func TestPodmanVolumesMountAtOnce(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.secret(t, "a", "secret-a")
	e.secret(t, "b", "secret-b")
	podmanVolume(t, e, "va", "a")
	podmanVolume(t, e, "vb", "b")
	da := e.mount(t, "va", podmanMountID)
	db := e.mount(t, "vb", podmanMountID)
	if da == db {
		t.Fatalf("both volumes got the mount %s", da)
	}
	if got := readFiles(t, da); got["a"] != "secret-a" || len(got) != 1 {
		t.Errorf("va holds %v", got)
	}
	if got := readFiles(t, db); got["b"] != "secret-b" || len(got) != 1 {
		t.Errorf("vb holds %v", got)
	}
	// A second Mount of a volume Podman has mounted means its count and
	// secretd's disagree: refused, and the mount is left as it is.
	if _, err := e.ctrl.Mount(context.Background(), "va", podmanMountID); err == nil || !strings.Contains(err.Error(), "podman volume unmount va") {
		t.Errorf("second Mount of va: %v", err)
	}
	if got := readFiles(t, da); got["a"] != "secret-a" {
		t.Errorf("va after the refused Mount: %v", got)
	}
	if err := e.ctrl.Unmount("vb", podmanMountID); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, db)
	if !slices.Contains(mountsUnder(t, e.root), da) {
		t.Fatal("the Unmount of vb wiped va's mount")
	}
	// An Unmount of a volume not mounted changes nothing.
	if err := e.ctrl.Unmount("vc", podmanMountID); err != nil {
		t.Errorf("Unmount of a volume not mounted: %v", err)
	}
	if err := e.ctrl.Unmount("va", podmanMountID); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, da)
}

// TestPodmanSharedMountLivesWhileAnyContainerRuns follows a volume's one
// mount through two containers of Podman's: each is named when it starts
// (ps, audit, in-use, on-update), the mount stays while either runs, and
// only the Unmount after the last one stops wipes it. Before, a resync
// gave the mount to the first container alone and wiped it when that one
// stopped, under the second.
func TestPodmanSharedMountLivesWhileAnyContainerRuns(t *testing.T) {
	var trail syncBuffer
	acts := &actions{}
	e := newEnv(t, time.Nanosecond, func(c *controller.Config) {
		c.Audit, c.Actions = audit.New(&trail, nil), acts
	})
	e.engine.SetPodman(true)
	e.secret(t, "db", "one")
	// On Podman a volume carries its on-update: a Mount's lookup of its
	// containers' labels would wait on Podman's locks.
	if err := e.ctrl.CreateVolume("v", map[string]string{controller.OptionSecrets: "db", controller.OptionOnUpdate: "signal:SIGHUP"}); err != nil {
		t.Fatal(err)
	}
	s := e.run(t)
	ctx := context.Background()

	dir := e.mount(t, "v", podmanMountID)
	c1 := podmanCtr("id-1", "c1", container.StateRunning, "v", dir, "")
	e.engine.Set(c1)
	s.Send(t, containerStart("id-1", "c1", c1.Labels))
	s.Sync(t)
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"c1@" + podmanMountID}) {
		t.Fatalf("tasks with c1 running: %v", got)
	}
	if err := e.ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}

	// c2 starts on the volume: Podman calls no Mount, it shares c1's.
	c2 := podmanCtr("id-2", "c2", container.StateRunning, "v", dir, "")
	e.engine.Set(c1, c2)
	s.Send(t, containerStart("id-2", "c2", c2.Labels))
	s.Sync(t)
	tasks := e.ctrl.Tasks()
	if len(tasks) != 2 || tasks[0].ContainerName != "c1" || tasks[1].ContainerName != "c2" || tasks[0].Mount != dir || tasks[1].Mount != dir ||
		tasks[1].ContainerID != "id-2" || len(tasks[1].Secrets) != 1 || tasks[1].Secrets[0].Name != "db" {
		t.Fatalf("tasks with c1 and c2 running: %+v", tasks)
	}
	sec, _ := e.store.Get("db")
	if users, err := e.ctrl.Users(ctx, sec); err != nil || !slices.Equal(users, []string{"c1", "c2"}) {
		t.Errorf("users of db: %v, %v", users, err)
	}

	// A rotation rewrites the one mount and signals both containers, as
	// their volume's on-update asks.
	sec, err := e.store.Update("db", []byte("two"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rot, err := e.ctrl.Rotate(ctx, sec); err != nil || rot.Updated != 1 {
		t.Fatalf("rotate: %+v, %v", rot, err)
	}
	if got := readFiles(t, dir); got["db"] != "two" {
		t.Errorf("after the rotation the mount holds %v", got)
	}
	if got, want := acts.done(), []string{"kill id-1 SIGHUP", "kill id-2 SIGHUP"}; !slices.Equal(got, want) {
		t.Errorf("on-update actions %v, want %v", got, want)
	}

	// c1 stops; Podman sends no Unmount while c2 runs, and nothing wipes
	// the mount: not the event, not a resync.
	e.engine.Set(podmanCtr("id-1", "c1", container.StateExited, "v", dir, ""), c2)
	s.Send(t, containerDie("id-1"))
	s.Sync(t)
	if err := e.ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readFiles(t, dir); got["db"] != "two" {
		t.Fatalf("with c2 still running the mount holds %v", got)
	}
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"c2@" + podmanMountID}) {
		t.Errorf("tasks with c2 alone running: %v", got)
	}

	// c2 stops: Podman's Unmount wipes the mount.
	e.engine.Set(podmanCtr("id-1", "c1", container.StateExited, "v", dir, ""), podmanCtr("id-2", "c2", container.StateExited, "v", dir, ""))
	s.Send(t, containerDie("id-2"))
	s.Sync(t)
	if err := e.ctrl.Unmount("v", podmanMountID); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, dir)
	if got := e.ctrl.Tasks(); len(got) != 0 {
		t.Errorf("tasks after the Unmount: %+v", got)
	}
	want := []string{"container.mount:c1", "container.mount:c2", "container.rotate:c1", "container.rotate:c2", "container.wipe:c2"}
	if got := trailOf(t, &trail); !slices.Equal(got, want) {
		t.Errorf("audit trail %v, want %v", got, want)
	}
}

// TestPodmanSharedMountAdopted: after a restart of secretd a resync adopts
// a shared mount without rewriting it, with every running container of
// its volume as its members; once none runs (Podman's Unmount was lost
// while secretd was down) a resync wipes it.
func TestPodmanSharedMountAdopted(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.engine.SetPodman(true)
	e.secret(t, "db", "one")
	podmanVolume(t, e, "v", "db")
	dir := e.mount(t, "v", podmanMountID)
	if base := filepath.Base(dir); !strings.HasPrefix(base, "shared.") {
		t.Errorf("a shared mount made on demand is at %s", dir)
	}
	data, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		t.Fatal(err)
	}
	e.engine.Set(podmanCtr("id-1", "c1", container.StateRunning, "v", dir, ""),
		podmanCtr("id-2", "c2", container.StateRunning, "v", dir, ""),
		podmanCtr("id-3", "c3", container.StateExited, "v", dir, ""))

	restarted, err := newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := taskNames(restarted); !slices.Equal(got, []string{"c1@" + podmanMountID, "c2@" + podmanMountID}) {
		t.Errorf("tasks after the restart: %v", got)
	}
	if now, err := os.Readlink(filepath.Join(dir, "..data")); err != nil || now != data {
		t.Errorf("the adopted mount was rewritten: ..data %s, was %s (%v)", now, data, err)
	}
	if got := readFiles(t, dir); got["db"] != "one" {
		t.Errorf("adopted mount holds %v", got)
	}

	e.engine.Set(podmanCtr("id-1", "c1", container.StateExited, "v", dir, ""),
		podmanCtr("id-2", "c2", container.StateExited, "v", dir, ""))
	if err := restarted.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, dir)
}

// TestPodmanResyncKeepsSharedMount: resyncs alone, with no events, keep a
// shared mount while any container of its volume runs, whichever that is.
// Before, the first resync gave the mount to the only container running
// then, and the next one wiped it once that container stopped, under the
// container that still ran.
func TestPodmanResyncKeepsSharedMount(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "db", "one")
	podmanVolume(t, e, "v", "db")
	dir := e.mount(t, "v", podmanMountID)
	ctx := context.Background()
	e.engine.Set(podmanCtr("id-1", "c1", container.StateRunning, "v", dir, ""))
	if err := e.ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	e.engine.Set(podmanCtr("id-1", "c1", container.StateExited, "v", dir, ""),
		podmanCtr("id-2", "c2", container.StateRunning, "v", dir, ""))
	if err := e.ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(mountsUnder(t, e.root), dir) {
		t.Fatal("a resync wiped the mount c2 still reads")
	}
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"c2@" + podmanMountID}) {
		t.Errorf("tasks: %v", got)
	}
}

// TestMountFromAnotherEngineRefused: once the engine said which it is, a
// Mount that another engine sends fails closed, with what to run instead:
// the resync would find none of that engine's containers and wipe the
// mount under them. Before the engine answers, Mounts go on.
func TestMountFromAnotherEngineRefused(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.secret(t, "a", "secret-a")
	podmanVolume(t, e, "va", "a")
	ctx := context.Background()

	// Not told yet: both kinds of Mount go on.
	if err := e.ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	e.mount(t, "va", "m1")
	e.mount(t, "va", podmanMountID)

	docker := newEnv(t, time.Hour)
	docker.secret(t, "a", "secret-a")
	podmanVolume(t, docker, "va", "a")
	docker.engine.SetVersion(&types.Version{Components: []types.ComponentVersion{{Name: "Engine", Version: "20.10.24"}}})
	if err := docker.ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := docker.ctrl.Mount(ctx, "va", podmanMountID); err == nil || !strings.Contains(err.Error(), "secretd follows the Docker Engine at fake://engine") ||
		!strings.Contains(err.Error(), "--docker-host unix:///run/podman/podman.sock") {
		t.Errorf("Podman's Mount on a secretd following Docker: %v", err)
	}
	docker.mount(t, "va", "m1")

	podman := newEnv(t, time.Hour)
	podman.secret(t, "a", "secret-a")
	podmanVolume(t, podman, "va", "a")
	podman.engine.SetVersion(&types.Version{Components: []types.ComponentVersion{{Name: "Podman Engine", Version: "4.3.1"}}})
	if err := podman.ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := podman.ctrl.Mount(ctx, "va", "m1"); err == nil || !strings.Contains(err.Error(), "secretd follows Podman at fake://engine") {
		t.Errorf("Docker's Mount on a secretd following Podman: %v", err)
	}
	podman.mount(t, "va", podmanMountID)
	for _, env := range []*env{e, docker, podman} {
		if got := mountsUnder(t, env.root); len(got) != len(env.ctrl.Tasks()) {
			t.Errorf("mounts %v for tasks %v: a refused Mount left one", got, env.ctrl.Tasks())
		}
	}
}

// TestPodmanInUseBeforeEvents: before any event or resync named a shared
// mount's containers, the in-use answer names every running container of
// its volume from the engine's list, not an anonymous mount.
func TestPodmanInUseBeforeEvents(t *testing.T) {
	e := newEnv(t, time.Hour)
	sec := e.secret(t, "db", "one")
	podmanVolume(t, e, "v", "db")
	dir := e.mount(t, "v", podmanMountID)
	e.engine.Set(podmanCtr("id-1", "c1", container.StateRunning, "v", dir, ""),
		podmanCtr("id-2", "c2", container.StateRunning, "v", dir, ""))
	users, err := e.ctrl.Users(context.Background(), sec)
	if err != nil || !slices.Equal(users, []string{"c1", "c2"}) {
		t.Errorf("users of db: %v, %v", users, err)
	}
}

// TestPodmanEventNames: the event filter asks for Podman's names of die
// and destroy ("died", "remove"), and a container Podman removes leaves
// the shared mount's members.
func TestPodmanEventNames(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.engine.SetPodman(true)
	e.secret(t, "db", "one")
	podmanVolume(t, e, "v", "db")
	s := e.run(t)
	for _, want := range []string{"died", "remove", "die", "destroy", "start"} {
		if !slices.Contains(s.Opts.Filters.Get("event"), want) {
			t.Errorf("event filter lacks %s: %v", want, s.Opts.Filters.Get("event"))
		}
	}
	dir := e.mount(t, "v", podmanMountID)
	c1 := podmanCtr("id-1", "c1", container.StateRunning, "v", dir, "")
	e.engine.Set(c1)
	s.Send(t, containerStart("id-1", "c1", nil))
	s.Sync(t)
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"c1@" + podmanMountID}) {
		t.Fatalf("tasks: %v", got)
	}
	s.Send(t, events.Message{Type: events.ContainerEventType, Action: "remove", Actor: events.Actor{ID: "id-1"}})
	s.Sync(t)
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"@" + podmanMountID}) {
		t.Errorf("tasks after c1 was removed: %v", got)
	}
	if got := readFiles(t, dir); got["db"] != "one" {
		t.Errorf("the remove event changed the mount: %v", got)
	}
}

// TestPodmanMountAsksNoEngine: a Podman Mount never waits on an engine
// lookup, which Podman's locks would hold until it timed out: a volume
// whose declaration or on-update is still to be learned from labels is
// refused at once, saying which options to give it.
func TestPodmanMountAsksNoEngine(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.secret(t, "db", "one")
	e.vols.set("noupdate", "db")
	e.vols.anon("nodecl")
	e.engine.Set(podmanCtr("id-1", "c1", container.StateCreated, "noupdate", "", "signal:SIGHUP"),
		podmanCtr("id-2", "c2", container.StateCreated, "nodecl", "", ""))
	before := e.engine.Counts().VolumeLists
	for vol, want := range map[string]string{
		"noupdate": "volume noupdate has no on-update option, and Podman cannot say during a Mount which container uses it, to read its secretd.on-update label: create the volume with -o on-update=none",
		"nodecl":   "volume nodecl declares no secrets, and Podman cannot say during a Mount which container uses it, to read its secretd.secrets label: create the volume with -o secrets=... and -o on-update=...",
	} {
		if _, err := e.ctrl.Mount(context.Background(), vol, podmanMountID); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Mount of %s: %v", vol, err)
		}
	}
	if n := e.engine.Counts().VolumeLists - before; n != 0 {
		t.Errorf("the Mounts asked the engine %d times", n)
	}
	if got := mountsUnder(t, e.root); len(got) != 0 {
		t.Errorf("refused Mounts left %v", got)
	}
	// Learned from the labels meanwhile (a resync here; a create event
	// too), the volume mounts.
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.mount(t, "noupdate", podmanMountID)
}
