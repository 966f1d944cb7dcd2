package controller_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/source"
	"github.com/secretd/secretd/store"
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
	if e.ctrl, err = controller.New(e.cfg); err != nil {
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
