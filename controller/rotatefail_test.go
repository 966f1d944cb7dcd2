package controller_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/audit"
)

// A rotation that cannot reach a container is no longer only logged: Rotate
// returns an error naming every such container, the audit trail records
// each, and a metric counts them. The containers it reached get the new
// version.
func TestRotateReportsContainersItDidNotReach(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "db", "old-canary-5150")
	var trail syncBuffer
	rec := &recorder{}
	cfg := e.cfg
	cfg.Metrics, cfg.Audit, cfg.Log = rec, audit.New(&trail, nil), slog.New(slog.DiscardHandler)
	ctrl, err := newController(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dirs := map[string]string{}
	for _, name := range []string{"good", "broken1", "broken2"} {
		if err := ctrl.CreateVolume("v"+name, map[string]string{controller.OptionSecrets: "db"}); err != nil {
			t.Fatal(err)
		}
		dir, err := ctrl.Mount(ctx, "v"+name, "m"+name)
		if err != nil {
			t.Fatal(err)
		}
		dirs[name] = dir
	}
	// The containers run; resync names their mounts after them.
	var running []container.Summary
	for _, name := range []string{"good", "broken1", "broken2"} {
		running = append(running, ctr("id-"+name, name, container.StateRunning, 1, "", "v"+name+"="+dirs[name]))
	}
	e.engine.Set(running...)
	if err := ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	// Two mounts go away behind secretd's back, as a broken host would make
	// them: their Update fails.
	for _, name := range []string{"broken1", "broken2"} {
		if err := unix.Unmount(dirs[name], unix.MNT_DETACH); err != nil {
			t.Fatal(err)
		}
	}
	sec, err := e.store.Update("db", []byte("new-canary-8086"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := ctrl.Rotate(ctx, sec)
	if rot.Updated != 1 || rot.Version != 2 {
		t.Errorf("Rotate reached %d containers with version %d, want 1 with 2", rot.Updated, rot.Version)
	}
	if len(rot.Containers) != 2 || rot.Containers[0].ContainerName != "broken1" || rot.Containers[0].Gets != api.RotationKept ||
		rot.Containers[1].ContainerName != "broken2" || len(rot.Containers[1].Targets) != 1 || rot.Containers[1].Targets[0] != "db" {
		t.Errorf("report %+v, want broken1 and broken2 kept at db", rot.Containers)
	}
	var rerr *controller.RotationError
	if !errors.As(err, &rerr) {
		t.Fatalf("Rotate: %v, want a *RotationError", err)
	}
	if len(rerr.Failed) != 2 || rerr.Failed[0].Container != "broken1" || rerr.Failed[1].Container != "broken2" || rerr.Version != 2 || rerr.Secret != "db" {
		t.Errorf("RotationError %+v", rerr)
	}
	msg := err.Error()
	for _, want := range []string{"version 2 of secret 'db'", "did not reach 2 containers", "broken1 (", "broken2 ("} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "good") || strings.Contains(msg, "\n") {
		t.Errorf("message %q names a container it reached, or spans lines", msg)
	}
	if b, err := os.ReadFile(filepath.Join(dirs["good"], "db")); err != nil || string(b) != "new-canary-8086" {
		t.Errorf("the reachable container reads %q %v", b, err)
	}

	rec.mu.Lock()
	if rec.rotFailed != 2 || rec.rot != 1 {
		t.Errorf("metrics: %d rotation failures, %d rotations, want 2 and 1", rec.rotFailed, rec.rot)
	}
	rec.mu.Unlock()
	failed := map[string]bool{}
	for _, ev := range jsonLines(t, trail.String()) {
		if ev["event"] != audit.ContainerRotateFailed {
			continue
		}
		c, _ := ev["container"].(string)
		failed[c] = true
		if ev["secret"] != "db" || ev["version"] != 2.0 || ev["container_id"] != "id-"+c || ev["reason"] == "" {
			t.Errorf("failed rotation event %v", ev)
		}
	}
	if len(failed) != 2 || !failed["broken1"] || !failed["broken2"] {
		t.Errorf("audit trail records failed rotations for %v, want broken1 and broken2", failed)
	}
	for _, s := range []string{trail.String(), msg} {
		if strings.Contains(s, "canary") {
			t.Errorf("a secret value leaked: %s", s)
		}
	}
}
