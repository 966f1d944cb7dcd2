package controller_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/enginesim"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/store"
)

// fakeSources answers driver secrets from a counter, or fails.
type fakeSources struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (f *fakeSources) Fetch(_ context.Context, sec store.Secret, _ source.Container) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	return []byte(sec.Name + "-fetched-" + strings.Repeat("i", f.calls)), nil
}

// TestMountDriverSecret: a driver secret's value comes from Sources at
// Mount, a failing source fails the Mount, and a rotation of another
// secret keeps the mounted value without asking the source again.
func TestMountDriverSecret(t *testing.T) {
	e := newEnv(t, 0)
	src := &fakeSources{}
	e.cfg.Sources = src
	var err error
	if e.ctrl, err = newController(t, e.cfg); err != nil {
		t.Fatal(err)
	}
	e.secret(t, "stored", "v1")
	if _, err := e.store.Create(store.Spec{Name: "drv", Source: &store.SourceSpec{Driver: "fake"}}); err != nil {
		t.Fatal(err)
	}
	e.vols.set("v", "stored;drv")
	dir := e.mount(t, "v", "m1")
	if got := readFiles(t, dir); got["drv"] != "drv-fetched-i" || got["stored"] != "v1" {
		t.Fatalf("mounted %v", got)
	}
	sec, err := e.store.Update("stored", []byte("v2"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.ctrl.Rotate(context.Background(), sec); err != nil {
		t.Fatal(err)
	}
	if got := readFiles(t, dir); got["drv"] != "drv-fetched-i" || got["stored"] != "v2" || src.calls != 1 {
		t.Errorf("after rotating another secret: %v, %d source calls; want the mounted value kept and 1 call", got, src.calls)
	}

	src.err = &source.Error{Secret: "drv", Source: "shell driver", Err: errors.New("down")}
	e.vols.set("w", "drv")
	_, err = e.ctrl.Mount(context.Background(), "w", "m2")
	if err == nil || !strings.Contains(err.Error(), "secret 'drv'") {
		t.Errorf("mount with the source down: %v, want the source's error naming the secret", err)
	}
	if err := e.ctrl.Unmount("v", "m1"); err != nil {
		t.Fatal(err)
	}
}

// whoSources records the container each Fetch was for.
type whoSources struct {
	mu  sync.Mutex
	who []source.Container
}

func (f *whoSources) Fetch(_ context.Context, sec store.Secret, who source.Container) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.who = append(f.who, who)
	return []byte(sec.Name + "-value"), nil
}

func (f *whoSources) last() source.Container {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.who[len(f.who)-1]
}

// TestDriverSecretHostname: a secret driver is told the hostname of the
// container that mounts, learned at its create event; a container whose
// create was not seen (or was destroyed meanwhile) gets none, never
// another container's.
func TestDriverSecretHostname(t *testing.T) { eachProfile(t, testDriverSecretHostname) }

func testDriverSecretHostname(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, 0)
	src := &whoSources{}
	e.cfg.Sources = src
	var err error
	if e.ctrl, err = newController(t, e.cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Create(store.Spec{Name: "drv", Source: &store.SourceSpec{Driver: "fake"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Create(store.Spec{Name: "stored", Data: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	e.engine.SetHostnames(map[string]string{"id-web": "myhost", "id-db": "dbhost", "id-old": "oldhost", "id-plain": "plainhost"})
	// A container created while secretd was away is learned at the
	// resync; one that declares only stored secrets is not inspected.
	e.vols.anon("old")
	e.vols.anon("plain")
	e.engine.Set(ctr("id-old", "old", container.StateExited, 1, "drv", "old"),
		ctr("id-plain", "plain", container.StateExited, 1, "stored", "plain"))
	s := e.run(t)
	e.ctrl.WaitLearning()
	if n := e.engine.Counts().Inspects; n != 1 {
		t.Errorf("the resync inspected %d containers, want 1 (the one declaring a driver secret)", n)
	}
	e.mount(t, "old", "m0")
	if who := src.last(); who.ID != "id-old" || who.Hostname != "oldhost" {
		t.Errorf("the driver was told %+v for a container known from the resync, want hostname oldhost", who)
	}
	if err := e.ctrl.Unmount("old", "m0"); err != nil {
		t.Fatal(err)
	}
	e.vols.anon("vol")
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "drv", "vol"))
	create := containerCreate("id-web")
	create.Actor.Attributes = map[string]string{controller.LabelSecrets: "drv", "name": "web"}
	s.Send(t, create)
	s.Sync(t)
	e.ctrl.WaitLearning()
	e.mount(t, "vol", "m1")
	if who := src.last(); who.ID != "id-web" || who.Name != "web" || who.Hostname != "myhost" {
		t.Errorf("the driver was told %+v, want container web with hostname myhost", who)
	}
	if err := e.ctrl.Unmount("vol", "m1"); err != nil {
		t.Fatal(err)
	}

	// After the container's destroy its hostname is forgotten: a Mount
	// for the same ID (a lookup that was not learned) sends none.
	s.Send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionDestroy, Actor: events.Actor{ID: "id-web"}})
	s.Sync(t)
	e.mount(t, "vol", "m2")
	if who := src.last(); who.ID != "id-web" || who.Hostname != "" {
		t.Errorf("after destroy the driver was told %+v, want no hostname", who)
	}
	if err := e.ctrl.Unmount("vol", "m2"); err != nil {
		t.Fatal(err)
	}

	// A container whose create event carries no secretd.secrets label is
	// not inspected.
	before := e.engine.Counts().Inspects
	s.Send(t, containerCreate("id-db"))
	s.Sync(t)
	e.ctrl.WaitLearning()
	if e.engine.Counts().Inspects != before {
		t.Errorf("a container declaring no secrets was inspected")
	}
}
