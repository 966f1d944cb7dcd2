package controller_test

import (
	"context"
	"errors"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/store"
)

// TestLocalClaims: what a host publishes for the others is what its own
// in-use check counts: existing containers' declarations, running or not,
// and the task table; an engine that does not answer is an error.
func TestLocalClaims(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "shared", "x")
	e.secret(t, "other", "y")
	e.vols.set("optvol", "source=shared,target=s")
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "shared", "webvol"))
	dir := e.mount(t, "webvol", "mweb")
	e.engine.Set(
		ctr("id-web", "web", container.StateRunning, 1, "shared", "webvol="+dir),
		ctr("id-stopped", "stopped", container.StateExited, 2, "other;source=shared@1,target=t", "stoppedvol"),
		ctr("id-opt", "volopt", container.StateExited, 5, "", "optvol"),
		ctr("id-none", "none", container.StateRunning, 6, ""),
	)
	// The resync names the mount's container, as its events would.
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	claims, err := e.ctrl.LocalClaims(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]controller.Claim{}
	for _, c := range claims {
		got[c.ContainerID] = c
	}
	if len(got) != 3 {
		t.Fatalf("claims %+v, want web, stopped and volopt", claims)
	}
	if c := got["id-web"]; c.Name != "web" || len(c.Entries) != 1 || c.Uses(store.KindSecret, "shared")[0] != 0 {
		t.Errorf("web: %+v", c)
	}
	if c := got["id-stopped"]; c.Name != "stopped" || len(c.Uses(store.KindSecret, "other")) != 1 || c.Uses(store.KindSecret, "shared")[0] != 1 {
		t.Errorf("stopped (pins shared@1): %+v", c)
	}
	if c := got["id-opt"]; len(c.Uses(store.KindSecret, "shared")) != 1 {
		t.Errorf("volopt (declared on its volume): %+v", c)
	}

	e.engine.SetListErr(errors.New("connection refused"))
	if _, err := e.ctrl.LocalClaims(context.Background()); err == nil {
		t.Fatal("an engine that does not answer gave claims: publishing them would free the secrets its containers use")
	}
}
