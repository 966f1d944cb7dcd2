package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/controller"
)

// fakeActions records the on-update actions a rotation asks the engine for.
type fakeActions struct {
	mu    sync.Mutex
	calls []string // "kill ID SIGNAL" or "restart ID"
}

func (f *fakeActions) ContainerKill(_ context.Context, id, signal string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "kill "+id+" "+signal)
	return nil
}

func (f *fakeActions) ContainerRestart(_ context.Context, id string, _ container.StopOptions) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "restart "+id)
	return nil
}

func (f *fakeActions) done() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func withActions(a controller.Actions) func(*controller.Config) {
	return func(c *controller.Config) { c.Actions = a }
}

// onUpdateCtr is a container using volume whose secretd.on-update label
// is label ("" for none).
func onUpdateCtr(id, name, volume, label string, created int64) container.Summary {
	c := ctr(id, name, container.StateCreated, created, "", volume)
	if label != "" {
		c.Labels[controller.LabelOnUpdate] = label
	}
	return c
}

// A mistyped secretd.on-update label fails the start of a container whose
// volume carries its own declaration, as any bad declaration does: the
// Mount learns the label with the volume's on-update, once, and refuses
// one that means nothing, naming the label and its value. Before, such a
// Mount asked the engine nothing and the container started; the label was
// only logged, later, from its start event.
func TestOnUpdateLabelFailsTheStart(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	for _, label := range []string{"signal:SIGHUPP", "restart-always"} {
		vol := "v-" + strings.NewReplacer(":", "", "-", "").Replace(label)
		e.vols.set(vol, "a")
		e.engine.Set(onUpdateCtr("id-web", "web", vol, label, 1))
		_, err := e.ctrl.Mount(context.Background(), vol, "m-"+vol)
		if err == nil || !strings.Contains(err.Error(), `label secretd.on-update="`+label+`"`) || !strings.Contains(err.Error(), "container web") {
			t.Errorf("label %s: Mount %v, want a refusal naming the container, the label and its value", label, err)
		}
		if v, _ := e.ctrl.Volume(vol); v.OnUpdate != "" {
			t.Errorf("label %s: a refused binding fixed the volume's on-update: %+v", label, v)
		}
	}
	if m := mountsUnder(t, e.root); len(m) != 0 {
		t.Errorf("mounts after refused Mounts: %v", m)
	}
	// An image's label is not the container's choice.
	e.vols.set("vimg", "a")
	img := onUpdateCtr("id-img", "img", "vimg", "restart", 1)
	img.ImageID = "sha256:restarting"
	e.engine.SetImageLabels("sha256:restarting", map[string]string{controller.LabelOnUpdate: "restart"})
	e.engine.Set(img)
	if _, err := e.ctrl.Mount(context.Background(), "vimg", "m-img"); err == nil || !strings.Contains(err.Error(), "comes from its image") || !strings.Contains(err.Error(), "-o on-update=") {
		t.Errorf("on-update from the image: %v", err)
	}
	// Two containers that disagree on the volume they share: one of them
	// would not get what its label says.
	e.vols.set("vshared", "a")
	e.engine.Set(onUpdateCtr("id-one", "one", "vshared", "signal:SIGHUP", 1), onUpdateCtr("id-two", "two", "vshared", "restart", 2))
	if _, err := e.ctrl.Mount(context.Background(), "vshared", "m-shared"); err == nil || !strings.Contains(err.Error(), "one and two") ||
		!strings.Contains(err.Error(), `"signal:SIGHUP" and "restart"`) {
		t.Errorf("labels disagree: %v", err)
	}
}

// The on-update learned with the volume is fixed for good: the first Mount
// asks the engine once, later ones never, and a rotation signals the
// container as its label said. A Mount that finds no container using the
// volume yet (dockerd copying the image's files into it at create) goes
// on without it, and the start's Mount learns it.
func TestOnUpdateLearnedOnce(t *testing.T) {
	acts := &fakeActions{}
	e := newEnv(t, 0, withActions(acts))
	e.secret(t, "a", "secret-a")
	e.vols.set("vol", "a")
	// The copy at create: no container listed yet.
	e.mount(t, "vol", "m-copy")
	if err := e.ctrl.Unmount("vol", "m-copy"); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.ctrl.Volume("vol"); v.OnUpdate != "" {
		t.Fatalf("learned an on-update with no container: %+v", v)
	}
	s := e.run(t)
	web := onUpdateCtr("id-web", "web", "vol", "signal:hup", 1)
	e.engine.Set(web)
	before := e.engine.Counts().VolumeLists
	e.mount(t, "vol", "m1")
	if n := e.engine.Counts().VolumeLists - before; n != 1 {
		t.Errorf("the start's Mount asked the engine %d times, want once", n)
	}
	if v, _ := e.ctrl.Volume("vol"); v.OnUpdate != "signal:SIGHUP" {
		t.Errorf("volume on-update %q, want signal:SIGHUP", v.OnUpdate)
	}
	if err := e.ctrl.Unmount("vol", "m1"); err != nil {
		t.Fatal(err)
	}
	// Restarts: the record alone, whatever the engine says now.
	e.engine.Set(onUpdateCtr("id-web", "web", "vol", "signal:SIGHUPP", 1))
	before = e.engine.Counts().VolumeLists
	e.mount(t, "vol", "m2")
	if n := e.engine.Counts().VolumeLists - before; n != 0 {
		t.Errorf("a later Mount asked the engine %d times", n)
	}
	s.Send(t, volumeMount("vol", "id-web"))
	s.Send(t, containerStart("id-web", "web", web.Labels))
	s.Sync(t)
	sec, err := e.store.Update("a", []byte("secret-a2"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctrl.Rotate(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	if got := acts.done(); !slices.Equal(got, []string{"kill id-web SIGHUP"}) {
		t.Errorf("actions after the rotation: %v", got)
	}
	e.ctrl.Unmount("vol", "m2")

	// The record survives a restart of secretd with the on-update fixed.
	e.ctrl.WaitLearning()
	b, err := os.ReadFile(filepath.Join(e.cfg.VolumesDir, "vol.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil || rec["on_update"] != "signal:SIGHUP" {
		t.Errorf("volume record %s: want on_update signal:SIGHUP", b)
	}
}

// A container's create event learns its volume's on-update off the start
// path, so the Mount that follows asks the engine nothing.
func TestCreateEventLearnsOnUpdate(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	e.vols.set("vol", "a")
	s := e.run(t)
	web := onUpdateCtr("id-web", "web", "vol", "restart", 1)
	e.engine.Set(web)
	s.Send(t, containerCreate("id-web", web.Labels))
	s.Sync(t)
	e.ctrl.WaitLearning()
	if v, _ := e.ctrl.Volume("vol"); v.OnUpdate != "restart" {
		t.Fatalf("after the create event: on-update %q, want restart", v.OnUpdate)
	}
	before := e.engine.Counts().VolumeLists
	e.mount(t, "vol", "m1")
	if n := e.engine.Counts().VolumeLists - before; n != 0 {
		t.Errorf("the Mount after the create event asked the engine %d times", n)
	}
	e.ctrl.Unmount("vol", "m1")
}

// A later container on a volume whose on-update is fixed gets the
// volume's, as it gets the volume's declaration; its own label is seen only
// at its start event, too late to refuse its start, and is warned about.
func TestLaterContainerGetsTheVolumesOnUpdate(t *testing.T) {
	acts := &fakeActions{}
	var logs syncBuffer
	e := newEnv(t, 0, withActions(acts), withLog(&logs))
	e.secret(t, "a", "secret-a")
	e.vols.full("vol", "a", "restart")
	s := e.run(t)
	e.mount(t, "vol", "m1")
	later := onUpdateCtr("id-later", "later", "vol", "signal:SIGHUPP", 2)
	e.engine.Set(later)
	s.Send(t, volumeMount("vol", "id-later"))
	s.Send(t, containerStart("id-later", "later", later.Labels))
	s.Sync(t)
	if !strings.Contains(logs.String(), "on-update label means nothing") || !strings.Contains(logs.String(), "SIGHUPP") {
		t.Errorf("no warning about the later container's label:\n%s", logs.String())
	}
	sec, err := e.store.Update("a", []byte("secret-a2"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctrl.Rotate(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the volume's restart", func() bool { return slices.Equal(acts.done(), []string{"restart id-later"}) })
	e.ctrl.Unmount("vol", "m1")
}

// A volume bound by an earlier version, before on-update belonged to the
// volume, still mounts from its record alone: at the engine's boot the
// engine answers nothing while it waits on the Mount. A resync learns its
// on-update afterwards.
func TestEarlierRecordMountsWithoutTheEngine(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	if err := os.MkdirAll(e.cfg.VolumesDir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := `{"name":"vold","options":{"secrets":"a"},"created":"2025-01-01T00:00:00Z","declaration":"a","bound_by":"option"}`
	if err := os.WriteFile(filepath.Join(e.cfg.VolumesDir, "vold.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	ctrl := mustNew(t, e.cfg)
	e.engine.SetListErr(errors.New("connection refused"))
	dir, err := ctrl.Mount(context.Background(), "vold", "m1")
	if err != nil {
		t.Fatalf("an earlier record's Mount with the engine down: %v", err)
	}
	e.engine.SetListErr(nil)
	e.engine.Set(ctr("id-web", "web", container.StateRunning, 1, "", "vold="+dir))
	e.engine.SetLabel("id-web", controller.LabelOnUpdate, "signal:SIGUSR1")
	if err := ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := ctrl.Volume("vold"); v.OnUpdate != "signal:SIGUSR1" {
		t.Errorf("after a resync: on-update %q, want signal:SIGUSR1", v.OnUpdate)
	}
	ctrl.Unmount("vold", "m1")
	ctrl.WaitLearning()
}

// The on-update option is checked when the volume is created: a typo
// fails `docker volume create` (and `docker run` with volume-opt), naming
// the option and its value.
func TestOnUpdateOptionChecked(t *testing.T) {
	e := newEnv(t, 0)
	for _, bad := range []string{"signal:SIGHUPP", "restart-always", "reload"} {
		err := e.ctrl.CreateVolume("v", map[string]string{controller.OptionSecrets: "a", controller.OptionOnUpdate: bad})
		if err == nil || !strings.Contains(err.Error(), `option on-update="`+bad+`"`) {
			t.Errorf("on-update=%s: %v", bad, err)
		}
	}
	if _, ok := e.ctrl.Volume("v"); ok {
		t.Error("a refused create recorded the volume")
	}
	if err := e.ctrl.CreateVolume("v", map[string]string{controller.OptionSecrets: "a", controller.OptionOnUpdate: "signal:usr1"}); err != nil {
		t.Fatal(err)
	}
	if v, _ := e.ctrl.Volume("v"); v.OnUpdate != "signal:SIGUSR1" || !v.Settled() {
		t.Errorf("volume %+v, want settled with signal:SIGUSR1", v)
	}
	// The same options again are a no-op; another on-update is refused.
	if err := e.ctrl.CreateVolume("v", map[string]string{controller.OptionSecrets: "a", controller.OptionOnUpdate: "restart"}); err == nil {
		t.Error("create with another on-update succeeded")
	}
}
