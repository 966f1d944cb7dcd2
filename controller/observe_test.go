package controller_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/audit"
)

// recorder is a controller.Metrics that remembers every call.
type recorder struct {
	mu        sync.Mutex
	mounts    int
	rot       int
	rotFailed int
	events    []string
	resync    int
	errs      []string
}

func (r *recorder) ObserveMount(time.Duration) { r.mu.Lock(); r.mounts++; r.mu.Unlock() }
func (r *recorder) Rotated(n int)              { r.mu.Lock(); r.rot += n; r.mu.Unlock() }
func (r *recorder) RotationFailed(n int)       { r.mu.Lock(); r.rotFailed += n; r.mu.Unlock() }
func (r *recorder) Event(a string)             { r.mu.Lock(); r.events = append(r.events, a); r.mu.Unlock() }
func (r *recorder) Resync()                    { r.mu.Lock(); r.resync++; r.mu.Unlock() }
func (r *recorder) Error(op string, err error) {
	if err == nil {
		return
	}
	r.mu.Lock()
	r.errs = append(r.errs, op+":"+err.Error())
	r.mu.Unlock()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func jsonLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("not JSON: %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestMetricsAuditAndLogKeys drives a mount, a refused mount, a rotation
// and an unmount, and checks what the metrics, the audit trail and the log
// heard: the right events, stable keys, and never a secret's value.
func TestMetricsAuditAndLogKeys(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	const v1, v2 = "canary-value-one-3f9a", "canary-value-two-77c1"
	e.secret(t, "db", v1)
	var logs, trail syncBuffer
	rec := &recorder{}
	ctrl, err := newController(t, controller.Config{
		Store: e.store, Engine: e.engine, EngineHost: "fake://engine",
		MountRoot: e.root, DriverName: driverName, Grace: time.Nanosecond,
		Metrics: rec, Audit: audit.New(&trail, nil),
		Log: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "db;source=db,target=x/db", "vweb"))
	dir, err := ctrl.Mount(ctx, "vweb", "mweb")
	if err != nil {
		t.Fatal(err)
	}
	if n := ctrl.ActiveMounts(); n != 1 {
		t.Errorf("ActiveMounts = %d, want 1", n)
	}
	e.engine.Set(ctr("id-web", "web", container.StateRunning, 1, "db;source=db,target=x/db", "vweb="+dir),
		ctr("id-bad", "bad", container.StateCreated, 2, "missing", "vbad"))
	// The resync names the mount's container, and the trail gets the mount.
	if err := ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ctrl.Mount(ctx, "vbad", "mbad"); err == nil {
		t.Fatal("a mount of a missing secret succeeded")
	}
	sec, err := e.store.Update("db", []byte(v2), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ctrl.Rotate(ctx, sec); err != nil || n.Updated != 1 {
		t.Fatalf("rotate: %+v %v", n, err)
	}
	if err := ctrl.Unmount("vweb", "mweb"); err != nil {
		t.Fatal(err)
	}
	if err := ctrl.Resync(ctx); err != nil {
		t.Fatal(err)
	}

	rec.mu.Lock()
	if rec.mounts != 1 || rec.rot != 1 || rec.resync != 2 {
		t.Errorf("metrics: mounts %d rotations %d resyncs %d, want 1 1 2", rec.mounts, rec.rot, rec.resync)
	}
	if len(rec.errs) != 1 || !strings.HasPrefix(rec.errs[0], "mount:") {
		t.Errorf("metrics errors %v, want one mount error", rec.errs)
	}
	rec.mu.Unlock()

	var events []string
	for _, ev := range jsonLines(t, trail.String()) {
		name := ev["event"].(string)
		if name == audit.Denied {
			name += "/" + ev["action"].(string)
		}
		events = append(events, name)
		switch name {
		case audit.ContainerMount:
			if ev["container"] != "web" || ev["container_id"] != "id-web" || ev["mount"] != dir {
				t.Errorf("mount event %v", ev)
			}
			if s := ev["secrets"].([]any); len(s) != 2 || s[1].(map[string]any)["target"] != "x/db" || s[0].(map[string]any)["version"] != 1.0 {
				t.Errorf("mount event secrets %v", s)
			}
		case "denied/" + audit.ContainerMount:
			if ev["volume"] != "vbad" || !strings.Contains(ev["reason"].(string), "missing") {
				t.Errorf("denied event %v", ev)
			}
		case audit.ContainerRotate:
			if ev["secret"] != "db" || ev["version"] != 2.0 || ev["container"] != "web" {
				t.Errorf("rotate event %v", ev)
			}
		}
	}
	want := []string{audit.ContainerMount, "denied/" + audit.ContainerMount, audit.ContainerRotate, audit.ContainerWipe}
	if !slices.Equal(events, want) {
		t.Errorf("audit events %v, want %v", events, want)
	}

	// Log lines use the stable keys for what they name.
	stable := map[string]bool{"container": true, "secret": true, "version": true, "mount": true}
	aliases := []string{"name", "path", "dir", "secret_name", "container_name", "mountpoint", "data", "value"}
	for _, l := range jsonLines(t, logs.String()) {
		for _, k := range aliases {
			if _, ok := l[k]; ok && !stable[k] {
				t.Errorf("log line %q uses key %q instead of a stable one: %v", l["msg"], k, l)
			}
		}
	}
	for what, s := range map[string]string{"log": logs.String(), "audit trail": trail.String()} {
		for _, v := range []string{v1, v2} {
			if strings.Contains(s, v) {
				t.Errorf("%s contains a secret's value", what)
			}
		}
	}
	if !strings.Contains(logs.String(), `"mount":"`+dir+`"`) {
		t.Errorf("no log line names the mount under the key mount:\n%s", logs.String())
	}
}
