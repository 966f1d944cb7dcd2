package controller_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/enginesim"
	"github.com/secretd/secretd/internal/enginetest"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
	"github.com/secretd/secretd/tmpfs"
	"github.com/secretd/secretd/tmpfs/tmpfstest"
)

const driverName = "secretd-unit"

// ctr builds a container summary; mounts are "volume" or "volume=source"
// of the secretd driver.
func ctr(id, name string, state container.ContainerState, created int64, secrets string, mounts ...string) container.Summary {
	s := enginetest.Container(id, name, state, created, nil)
	if secrets != "" {
		s.Labels[controller.LabelSecrets] = secrets
	}
	for _, m := range mounts {
		name, src, _ := strings.Cut(m, "=")
		mp := enginetest.Volume(name, driverName, "/run/secrets")
		mp.Source = src
		s.Mounts = append(s.Mounts, mp)
	}
	return s
}

// volumes creates volumes through the controller, as the driver does.
type volumes struct {
	t    testing.TB
	ctrl func() *controller.Controller
}

// set creates a volume with a secrets option.
func (v *volumes) set(name, decl string) {
	v.t.Helper()
	if err := v.ctrl().CreateVolume(name, map[string]string{controller.OptionSecrets: decl}); err != nil {
		v.t.Fatal(err)
	}
}

// full creates a volume with a secrets and an on-update option, as
// `secretd run` does: its Mounts need nothing from the engine.
func (v *volumes) full(name, decl, onUpdate string) {
	v.t.Helper()
	if err := v.ctrl().CreateVolume(name, map[string]string{controller.OptionSecrets: decl, controller.OptionOnUpdate: onUpdate}); err != nil {
		v.t.Fatal(err)
	}
}

// anon creates a volume without options, as `docker run --mount` does.
func (v *volumes) anon(name string) {
	v.t.Helper()
	if err := v.ctrl().CreateVolume(name, nil); err != nil {
		v.t.Fatal(err)
	}
}

type env struct {
	store  *store.Store
	root   string
	engine *enginetest.Engine
	vols   *volumes
	cfg    controller.Config
	ctrl   *controller.Controller
}

func newEnv(t testing.TB, grace time.Duration, opts ...func(*controller.Config)) *env {
	t.Helper()
	return newEnvOn(t, nil, grace, opts...)
}

// eachProfile runs test against an engine of each of enginesim's profiles:
// event handling must not depend on the fields Docker 29 dropped.
func eachProfile(t *testing.T, test func(*testing.T, *enginesim.Profile)) {
	for _, p := range enginesim.Profiles {
		t.Run(p.Name, func(t *testing.T) { test(t, &p) })
	}
}

// newEnvOn is newEnv with an engine whose events are shaped as profile p's
// (nil: as the test builds them).
func newEnvOn(t testing.TB, p *enginesim.Profile, grace time.Duration, opts ...func(*controller.Config)) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root")
	}
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: filepath.Join(dir, "mounts"), engine: enginetest.New(p)}
	e.vols = &volumes{t: t, ctrl: func() *controller.Controller { return e.ctrl }}
	if err := os.MkdirAll(e.root, 0o700); err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir, so it runs before the directory is removed.
	t.Cleanup(func() { wipeAllUnder(t, e.root) })
	b, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		t.Fatal(err)
	}
	e.store, _, err = store.Open(b, store.Config{KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	e.cfg = controller.Config{
		Store: e.store, Engine: e.engine, EngineHost: "fake://engine",
		VolumesDir: filepath.Join(dir, "volumes"),
		MountRoot:  e.root, DriverName: driverName, Grace: grace,
	}
	for _, o := range opts {
		o(&e.cfg)
	}
	e.ctrl, err = newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// newController is controller.New for a test: bindings are saved behind
// the Mounts that learn them, and the test's directory outlives the saves
// of every controller it started, not only the last.
func newController(t testing.TB, cfg controller.Config) (*controller.Controller, error) {
	c, err := controller.New(cfg)
	if err == nil {
		t.Cleanup(c.WaitLearning)
	}
	return c, err
}

func (e *env) secret(t testing.TB, name, data string) store.Secret {
	t.Helper()
	s, err := e.store.Create(store.Spec{Name: name, Data: []byte(data)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) mount(t *testing.T, volume, mountID string) string {
	t.Helper()
	dir, err := e.ctrl.Mount(context.Background(), volume, mountID)
	if err != nil {
		t.Fatalf("mount %s as %s: %v", volume, mountID, err)
	}
	return dir
}

// mountsUnder and wipeAllUnder are tmpfstest's, short.
var (
	mountsUnder  = tmpfstest.MountsUnder
	wipeAllUnder = tmpfstest.WipeAllUnder
)

func readFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := tmpfs.Read(dir)
	if err != nil {
		t.Fatalf("read %s: %v", dir, err)
	}
	out := map[string]string{}
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}

func gone(t *testing.T, root, dir string) {
	t.Helper()
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists: %v", dir, err)
	}
	if slices.Contains(mountsUnder(t, root), dir) {
		t.Errorf("%s still mounted", dir)
	}
}

func taskNames(c *controller.Controller) []string {
	var out []string
	for _, t := range c.Tasks() {
		out = append(out, t.ContainerName+"@"+t.MountID)
	}
	return out
}

func TestBindErrors(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "x")
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "", "vol"))
	_, err := e.ctrl.Mount(context.Background(), "vol", "m1")
	if err == nil || !strings.Contains(err.Error(), "container web using it has no "+controller.LabelSecrets+" label") {
		t.Errorf("no label: %v", err)
	}
	_, err = e.ctrl.Mount(context.Background(), "novol", "m2")
	if err == nil || !strings.Contains(err.Error(), "no container uses it yet") || !strings.Contains(err.Error(), "volume-nocopy") {
		t.Errorf("no container: %v", err)
	}
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "a", "vol"))
	e.engine.SetListErr(errors.New("connection refused"))
	_, err = e.ctrl.Mount(context.Background(), "vol", "m3")
	if err == nil || !strings.Contains(err.Error(), "Docker Engine did not answer") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("engine down, label declaration: %v", err)
	}
	// Volume options for the declaration and the on-update do not need
	// the engine.
	e.vols.full("optvol", "source=a,target=from-option", "none")
	dir, err := e.ctrl.Mount(context.Background(), "optvol", "m4")
	if err != nil {
		t.Fatalf("engine down, volume declaration: %v", err)
	}
	if got := readFiles(t, dir); got["from-option"] != "x" {
		t.Errorf("mounted %v", got)
	}
	// Without an on-update option, the first Mount must learn it from the
	// container: with the engine down, it fails closed and says why.
	e.vols.set("optvol2", "source=a,target=from-option")
	_, err = e.ctrl.Mount(context.Background(), "optvol2", "m6")
	if err == nil || !strings.Contains(err.Error(), "Docker Engine did not answer") || !strings.Contains(err.Error(), controller.LabelOnUpdate) ||
		!strings.Contains(err.Error(), "-o on-update=") {
		t.Errorf("engine down, volume declaration without on-update: %v", err)
	}
	e.engine.SetListErr(nil)
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "a", "vol"), ctr("id-two", "two", container.StateCreated, 2, "a;b", "vol"))
	if _, err := e.ctrl.Mount(context.Background(), "vol", "m5"); err == nil || !strings.Contains(err.Error(), "declare different ones (web and two)") {
		t.Errorf("labels disagree: %v", err)
	}
	if v, _ := e.ctrl.Volume("vol"); v.Bound() {
		t.Errorf("a refused binding bound the volume: %+v", v)
	}
	if m := mountsUnder(t, e.root); len(m) != 1 {
		t.Errorf("mounts after refused Mounts: %v", m)
	}
}

func TestUsers(t *testing.T) {
	e := newEnv(t, 0)
	shared := e.secret(t, "shared", "x")
	e.secret(t, "other", "y")
	e.vols.set("optvol", "source=shared,target=s")
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "shared", "webvol"))
	webDir := e.mount(t, "webvol", "mweb")
	// A label on a container without a secretd volume is not a declaration.
	noDriver := ctr("id-nodrv", "nodriver", container.StateExited, 3, "shared")
	noDriver.Mounts = []container.MountPoint{{Type: "volume", Name: "data", Driver: "local"}}
	e.engine.Set(
		ctr("id-web", "web", container.StateRunning, 1, "shared", "webvol="+webDir),
		ctr("id-stopped", "stopped", container.StateExited, 2, "other;source=shared,target=t", "stoppedvol"),
		noDriver,
		ctr("id-unrel", "unrelated", container.StateRunning, 4, "other", "unrelvol"),
		ctr("id-opt", "volopt", container.StateExited, 5, "", "optvol"),
		ctr("id-broken", "broken", container.StateExited, 6, "shared;;", "brokenvol"),
	)
	// The resync names the mount's container, as its events would.
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	users, err := e.ctrl.Users(context.Background(), shared)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"stopped", "volopt", "web"}; !slices.Equal(users, want) {
		t.Errorf("users %v, want %v", users, want)
	}

	// The task table alone still counts: the engine may not list a
	// container that is being created.
	e.engine.Set()
	if users, err := e.ctrl.Users(context.Background(), shared); err != nil || !slices.Equal(users, []string{"web"}) {
		t.Errorf("users from the task table: %v %v", users, err)
	}
	e.engine.SetListErr(errors.New("connection refused"))
	_, err = e.ctrl.Users(context.Background(), shared)
	if !errors.Is(err, errdefs.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("engine down: %v", err)
	}
}

// TestUsersByIDReference mounts a secret that the declaration names by ID,
// which Mount accepts because the store resolves IDs; the container then
// uses the secret and must block its removal.
// TestDeclarationsNameSecrets: a declaration names a secret; an ID or ID
// prefix is refused at Mount, because the in-use checks and rotations match
// declarations by name and would miss such a mount.
func TestDeclarationsNameSecrets(t *testing.T) {
	e := newEnv(t, 0)
	sec := e.secret(t, "db", "x")
	for i, ref := range []string{sec.ID, sec.ID[:8]} {
		vol := fmt.Sprintf("vol%d", i)
		e.vols.set(vol, "source="+ref+",target=db")
		e.engine.Set(ctr("id-"+vol, "web-"+vol, container.StateCreated, 1, "", vol))
		_, err := e.ctrl.Mount(context.Background(), vol, "m"+vol)
		if err == nil || !strings.Contains(err.Error(), "secret '"+ref+"' not found") {
			t.Errorf("mount by reference %q: %v", ref, err)
		}
		if ms, _ := tmpfs.Mounts(e.root); len(ms) != 0 {
			t.Errorf("refused mount left %v", ms)
		}
	}
}

func TestResync(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	e.secret(t, "s2", "two")
	files := []tmpfs.File{{Path: "s1", Data: []byte("stale content"), Mode: 0o444}}

	// Mounted by this controller for a container that has since exited.
	e.engine.Set(ctr("id-exited", "exited", container.StateCreated, 1, "s1", "vexit"))
	exitedDir := e.mount(t, "vexit", "mexited")
	// Mounted by this controller for a container that is still running.
	e.engine.Set(ctr("id-live", "live", container.StateCreated, 2, "s2", "vlive"))
	liveDir := e.mount(t, "vlive", "mlive")
	// Left behind by an earlier daemon: one with a running owner, one whose
	// owner is gone, one whose owner's mount is not of this driver.
	adoptDir := filepath.Join(e.root, "madopt")
	orphanDir := filepath.Join(e.root, "morphan")
	foreignDir := filepath.Join(e.root, "mforeign")
	for _, d := range []string{adoptDir, orphanDir, foreignDir} {
		if err := tmpfs.Mount(d, files, tmpfs.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	// The task records an earlier daemon wrote beside its mounts: the
	// engine reports no path for plugin volumes, so they are the only link
	// from a mount back to its container.
	for dir, rec := range map[string]string{
		adoptDir:   `{"mount_id":"madopt","volume":"vadopt","container_id":"id-adopt"}`,
		orphanDir:  `{"mount_id":"morphan","volume":"vorphan","container_id":"id-gone"}`,
		foreignDir: `{"mount_id":"mforeign","volume":"vforeign","container_id":"id-foreign"}`,
	} {
		if err := os.WriteFile(dir+".task", []byte(rec), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	stray := filepath.Join(e.root, strings.Repeat("5a", 32)) // a mount ID's directory
	if err := os.MkdirAll(filepath.Join(stray, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stray, "sub", "f"), []byte("leftover"), 0o600)

	foreign := ctr("id-foreign", "foreign", container.StateRunning, 5, "s1", "vforeign="+foreignDir)
	foreign.Mounts[0].Driver = "local"
	e.engine.Set(
		ctr("id-exited", "exited", container.StateExited, 1, "s1", "vexit="+exitedDir),
		ctr("id-live", "live", container.StateRunning, 2, "s2", "vlive="+liveDir),
		// A stopped container keeps its old Source; the running one owns it.
		ctr("id-old", "oldowner", container.StateExited, 0, "s1;source=s2,target=x/two", "vadopt="+adoptDir),
		ctr("id-adopt", "adoptee", container.StateRunning, 3, "s1;source=s2,target=x/two", "vadopt="+adoptDir),
		foreign,
	)
	time.Sleep(time.Millisecond) // past Grace
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatalf("resync: %v", err)
	}
	gone(t, e.root, exitedDir)
	gone(t, e.root, orphanDir)
	gone(t, e.root, foreignDir)
	gone(t, e.root, stray)
	for _, d := range []string{orphanDir, foreignDir, exitedDir} {
		if _, err := os.Stat(d + ".task"); !os.IsNotExist(err) {
			t.Errorf("task record of wiped mount %s left: %v", d, err)
		}
	}
	if got := mountsUnder(t, e.root); !slices.Equal(got, []string{adoptDir, liveDir}) && !slices.Equal(got, []string{liveDir, adoptDir}) {
		t.Errorf("mounted after resync: %v", got)
	}
	if got, want := taskNames(e.ctrl), []string{"adoptee@madopt", "live@mlive"}; !slices.Equal(got, want) {
		t.Errorf("tasks %v, want %v", got, want)
	}
	var adopted api.Task
	for _, tk := range e.ctrl.Tasks() {
		if tk.MountID == "madopt" {
			adopted = tk
		}
	}
	if adopted.ContainerID != "id-adopt" || adopted.Mount != adoptDir || len(adopted.Secrets) != 2 || adopted.Secrets[1].Target != "x/two" || adopted.Secrets[1].Version != 1 {
		t.Errorf("adopted task: %+v", adopted)
	}
	// Adoption brings the mount to what the declaration says now.
	if got := readFiles(t, adoptDir); got["s1"] != "one" || got["x/two"] != "two" {
		t.Errorf("adopted mount holds %v", got)
	}
	if got := readFiles(t, liveDir); got["s2"] != "two" {
		t.Errorf("kept mount holds %v", got)
	}
	var st api.Status
	e.ctrl.Stats(&st)
	if st.Resyncs != 1 || st.Mounts != 2 {
		t.Errorf("stats: %+v", st)
	}

	// Once the owner exits, the next resync wipes its mount.
	e.engine.SetState("id-live", container.StateExited)
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	gone(t, e.root, liveDir)
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"adoptee@madopt"}) {
		t.Errorf("tasks: %v", got)
	}
	e.engine.SetListErr(errors.New("connection refused"))
	if err := e.ctrl.Resync(context.Background()); err == nil {
		t.Error("resync with the engine down succeeded")
	}
	if got := mountsUnder(t, e.root); !slices.Equal(got, []string{adoptDir}) {
		t.Errorf("a failed resync changed the mounts: %v", got)
	}
}

// TestResyncLeavesForeignDirs keeps what appears under the mount root
// while the daemon runs and is not secretd's (a mistyped --mount-root, a
// directory another program made later): a resync takes it for nothing
// of its own, mounted or not, and removes nothing of it.
func TestResyncLeavesForeignDirs(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.engine.Set()
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(e.root, "app-data")
	if err := os.MkdirAll(filepath.Join(plain, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(plain, "sub", "keep"), []byte("mine"), 0o600); err != nil {
		t.Fatal(err)
	}
	mounted := filepath.Join(e.root, "cache")
	if err := tmpfs.Mount(mounted, []tmpfs.File{{Path: "f", Data: []byte("theirs"), Mode: 0o444}}, tmpfs.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tmpfs.Wipe(mounted) })
	time.Sleep(time.Millisecond) // past Grace
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatalf("resync: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(plain, "sub", "keep")); err != nil || string(b) != "mine" {
		t.Errorf("a directory that is not secretd's lost its file: %q, %v", b, err)
	}
	if !slices.Contains(mountsUnder(t, e.root), mounted) {
		t.Errorf("a mount that is not secretd's was wiped")
	}
}

// TestResyncGrace keeps a fresh mount whose container does not show as
// running yet: dockerd mounts before it starts the process.
func TestResyncGrace(t *testing.T) {
	e := newEnv(t, time.Hour)
	e.secret(t, "s1", "one")
	e.engine.Set(ctr("id-a", "a", container.StateCreated, 1, "s1", "va"))
	dir := e.mount(t, "va", "ma")
	e.engine.Set(ctr("id-a", "a", container.StateExited, 1, "s1", "va="+dir))
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(mountsUnder(t, e.root), dir) {
		t.Errorf("a mount within the grace period was wiped")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func resyncs(c *controller.Controller) uint64 {
	var st api.Status
	c.Stats(&st)
	return st.Resyncs
}

func TestRun(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "s1", "one")
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "s1", "vweb"))
	webDir := e.mount(t, "vweb", "mweb")
	e.engine.Set(ctr("id-db", "db", container.StateCreated, 2, "s1", "vdb"))
	dbDir := e.mount(t, "vdb", "mdb")
	e.engine.Set(
		ctr("id-web", "web", container.StateRunning, 1, "s1", "vweb="+webDir),
		ctr("id-db", "db", container.StateRunning, 2, "s1", "vdb="+dbDir),
	)

	e.start(t)
	s := e.engine.Next(t)
	for _, want := range []string{"type=container", "event=destroy", "event=rename"} {
		k, v, _ := strings.Cut(want, "=")
		if !slices.Contains(s.Opts.Filters.Get(k), v) {
			t.Errorf("event filter lacks %s: %v", want, s.Opts.Filters)
		}
	}
	waitFor(t, "the first resync", func() bool { return resyncs(e.ctrl) == 1 })
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"db@mdb", "web@mweb"}) {
		t.Fatalf("tasks after the first resync: %v", got)
	}

	s.Send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionRename, Actor: events.Actor{ID: "id-web", Attributes: map[string]string{"name": "zweb", "oldName": "/web"}}})
	s.Sync(t)
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"db@mdb", "zweb@mweb"}) {
		t.Errorf("tasks after rename: %v", got)
	}

	s.Send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionDestroy, Actor: events.Actor{ID: "id-db"}})
	s.Sync(t)
	gone(t, e.root, dbDir)
	if got := taskNames(e.ctrl); !slices.Equal(got, []string{"zweb@mweb"}) {
		t.Errorf("tasks after destroy: %v", got)
	}
	if !slices.Contains(mountsUnder(t, e.root), webDir) {
		t.Error("destroy of one container wiped another's mount")
	}

	// The stream breaks; while it is away the web container exits, and the
	// resync after the reconnect must notice.
	e.engine.SetState("id-web", container.StateExited)
	s.Break(errors.New("unexpected EOF"))
	s = e.engine.Next(t)
	waitFor(t, "the resync after reconnecting", func() bool { return resyncs(e.ctrl) == 2 })
	gone(t, e.root, webDir)
	if got := taskNames(e.ctrl); len(got) != 0 {
		t.Errorf("tasks after the resync: %v", got)
	}
	waitFor(t, "the engine error to clear", func() bool {
		var st api.Status
		e.ctrl.Stats(&st)
		return st.EngineError == ""
	})
	s.Sync(t)
}

// start runs the controller's event loop until t ends.
func (e *env) start(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.ctrl.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
}

// TestRunEngineDown reports the stream's error while the engine is away
// and retries until it answers again.
func TestRunEngineDown(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.start(t)
	s := e.engine.Next(t)
	waitFor(t, "the first resync", func() bool { return resyncs(e.ctrl) == 1 })
	e.engine.SetListErr(errors.New("connection refused"))
	s.Break(errors.New("connection reset"))
	s = e.engine.Next(t)
	waitFor(t, "the engine error", func() bool {
		var st api.Status
		e.ctrl.Stats(&st)
		return st.EngineError == "connection reset"
	})
	if n := resyncs(e.ctrl); n != 1 {
		t.Errorf("a failed resync was counted: %d", n)
	}
	e.engine.SetListErr(nil)
	s.Break(errors.New("still down"))
	e.engine.Next(t)
	// At least: the resync of the stream subscribed while the engine was
	// down may run only after it came back, and then count as well.
	waitFor(t, "a resync once the engine is back", func() bool { return resyncs(e.ctrl) >= 2 })
	var st api.Status
	e.ctrl.Stats(&st)
	if st.Engine != "fake://engine" {
		t.Errorf("status engine %q", st.Engine)
	}
}

// TestMountWhileEngineSilent: at boot dockerd restarts its containers
// before it answers API calls. A volume mounted before, for a container
// that declared its secrets by label, mounts again from its bound
// declaration.
func TestMountWhileEngineSilent(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "s1", "one")
	e.engine.Set(ctr("id-web", "web", container.StateCreated, 1, "s1", "vweb"))
	e.mount(t, "vweb", "m1")
	if err := e.ctrl.Unmount("vweb", "m1"); err != nil {
		t.Fatal(err)
	}
	e.engine.SetListErr(errors.New("engine busy restarting containers"))
	dir, err := e.ctrl.Mount(context.Background(), "vweb", "m2")
	if err != nil {
		t.Fatalf("mount of a bound volume: %v", err)
	}
	if got := readFiles(t, dir); got["s1"] != "one" {
		t.Errorf("mounted %v", got)
	}
	if tasks := taskNames(e.ctrl); !slices.Equal(tasks, []string{"@m2"}) {
		t.Errorf("tasks %v", tasks)
	}
	// A volume never seen before has nothing to go on: it fails closed.
	if _, err := e.ctrl.Mount(context.Background(), "vnew", "m3"); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("mount of an unknown volume with the engine silent: %v", err)
	}
}

// TestManagedPluginDriverName: the engine names a managed plugin's driver
// NAME:TAG; it is still this driver for the in-use checks.
func TestManagedPluginDriverName(t *testing.T) {
	e := newEnv(t, 0)
	sec := e.secret(t, "s1", "one")
	c := ctr("id-web", "web", container.StateExited, 1, "s1", "vweb")
	c.Mounts[0].Driver = driverName + ":latest"
	e.engine.Set(c)
	users, err := e.ctrl.Users(context.Background(), sec)
	if err != nil || !slices.Equal(users, []string{"web"}) {
		t.Fatalf("users %v, %v", users, err)
	}
}
