package driver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-plugins-helpers/volume"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/driver"
	"github.com/secretd/secretd/internal/enginetest"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
	"github.com/secretd/secretd/tmpfs"
	"github.com/secretd/secretd/tmpfs/tmpfstest"
)

type env struct {
	store    *store.Store
	root     string // mount root
	stateDir string
	engine   *enginetest.Engine
	drv      *driver.Driver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting tmpfs needs root")
	}
	dir := t.TempDir()
	// mountinfo prints resolved paths; compare against the same spelling.
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{root: filepath.Join(dir, "mounts"), stateDir: filepath.Join(dir, "volumes"), engine: enginetest.New(nil)}
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
	e.drv = e.newDriver(t)
	return e
}

// newDriver starts a driver and controller over the same store and state
// file, as a restarted daemon would.
func (e *env) newDriver(t *testing.T) *driver.Driver {
	t.Helper()
	ctrl, err := controller.New(controller.Config{
		Store:      e.store,
		Engine:     e.engine,
		Actions:    e.engine,
		VolumesDir: e.stateDir,
		MountRoot:  e.root,
		DriverName: driverName,
	})
	if err != nil {
		t.Fatal(err)
	}
	return driver.New(ctrl)
}

// mountsUnder and wipeAllUnder are tmpfstest's, short.
var (
	mountsUnder  = tmpfstest.MountsUnder
	wipeAllUnder = tmpfstest.WipeAllUnder
)

func (e *env) secret(t *testing.T, name, data string) {
	t.Helper()
	if _, err := e.store.Create(store.Spec{Name: name, Data: []byte(data)}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) create(t *testing.T, name, decl string) {
	t.Helper()
	if err := e.drv.Create(&volume.CreateRequest{Name: name, Options: map[string]string{driver.OptionSecrets: decl}}); err != nil {
		t.Fatalf("create volume %s: %v", name, err)
	}
}

func names(t *testing.T, d *driver.Driver) []string {
	t.Helper()
	l, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, v := range l.Volumes {
		out = append(out, v.Name)
	}
	return out
}

func TestCreateValidates(t *testing.T) {
	e := newEnv(t)
	err := e.drv.Create(&volume.CreateRequest{Name: "v", Options: map[string]string{"secret": "db"}})
	if err == nil || !strings.Contains(err.Error(), "unknown option") || !strings.Contains(err.Error(), `"secret"`) {
		t.Errorf("unknown option: %v", err)
	}
	err = e.drv.Create(&volume.CreateRequest{Name: "v", Options: map[string]string{driver.OptionSecrets: "db", "size": "1m"}})
	if err == nil || !strings.Contains(err.Error(), "unknown option") {
		t.Errorf("unknown option beside a good one: %v", err)
	}
	for _, decl := range []string{"db;db", "source=db,target=/etc/x", "source=db,bogus=1", "db@0", "", "bad name"} {
		_, want := declaration.Parse(decl)
		err := e.drv.Create(&volume.CreateRequest{Name: "v", Options: map[string]string{driver.OptionSecrets: decl}})
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Errorf("declaration %q: got %v, want the parser's %v", decl, err, want)
		}
	}
	if got := names(t, e.drv); len(got) != 0 {
		t.Errorf("refused creates were recorded: %v", got)
	}
	if _, err := e.drv.Get(&volume.GetRequest{Name: "v"}); err == nil {
		t.Error("Get finds a refused volume")
	}
	if ents, err := os.ReadDir(e.stateDir); err != nil || len(ents) != 0 {
		t.Errorf("volume records written by refused creates: %v %v", ents, err)
	}
}

// TestCreateRefusesBadNames: a volume's record is a file named for it, so
// a name that is not one Docker allows is refused and nothing is written.
func TestCreateRefusesBadNames(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"../x", "a/b", ".hidden", "", strings.Repeat("v", 256)} {
		err := e.drv.Create(&volume.CreateRequest{Name: name, Options: map[string]string{driver.OptionSecrets: "db"}})
		if err == nil || !strings.Contains(err.Error(), "invalid volume name") {
			t.Errorf("create %q: %v", name, err)
		}
	}
	if ents, err := os.ReadDir(e.stateDir); err != nil || len(ents) != 0 {
		t.Errorf("records written for refused names: %v %v", ents, err)
	}
}

func TestCreateIdempotent(t *testing.T) {
	e := newEnv(t)
	e.create(t, "v", "db;source=tls,target=tls/key.pem,mode=0400")
	// dockerd repeats Create for a volume it already knows, e.g. on `docker run -v`.
	e.create(t, "v", "db;source=tls,target=tls/key.pem,mode=0400")
	for _, opts := range []map[string]string{{driver.OptionSecrets: "db"}, nil} {
		err := e.drv.Create(&volume.CreateRequest{Name: "v", Options: opts})
		if err == nil || !strings.Contains(err.Error(), "already exists with other options") {
			t.Errorf("create with options %v over another: %v", opts, err)
		}
	}
	if err := e.drv.Create(&volume.CreateRequest{Name: "plain"}); err != nil {
		t.Fatal(err)
	}
	if err := e.drv.Create(&volume.CreateRequest{Name: "plain", Options: map[string]string{}}); err != nil {
		t.Errorf("no options and empty options differ: %v", err)
	}
	g, err := e.drv.Get(&volume.GetRequest{Name: "v"})
	if err != nil || g.Volume.Status[driver.OptionSecrets] != "db;source=tls,target=tls/key.pem,mode=0400" {
		t.Errorf("the first options were not kept: %+v %v", g, err)
	}
}

func TestGetListRemove(t *testing.T) {
	e := newEnv(t)
	e.create(t, "b", "x")
	e.create(t, "a", "y;z")
	if got := names(t, e.drv); strings.Join(got, ",") != "a,b" {
		t.Errorf("list: %v", got)
	}
	g, err := e.drv.Get(&volume.GetRequest{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Volume.Name != "a" || g.Volume.Mountpoint != "" || g.Volume.Status[driver.OptionSecrets] != "y;z" {
		t.Errorf("get: %+v", g.Volume)
	}
	if _, err := time.Parse(time.RFC3339, g.Volume.CreatedAt); err != nil {
		t.Errorf("CreatedAt %q: %v", g.Volume.CreatedAt, err)
	}
	if _, err := e.drv.Get(&volume.GetRequest{Name: "nope"}); err == nil || err.Error() != "no such volume: nope" {
		t.Errorf("get missing: %v", err)
	}
	if _, err := e.drv.Path(&volume.PathRequest{Name: "nope"}); err == nil {
		t.Error("path of a missing volume")
	}
	if err := e.drv.Remove(&volume.RemoveRequest{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := e.drv.Remove(&volume.RemoveRequest{Name: "a"}); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if got := names(t, e.drv); strings.Join(got, ",") != "b" {
		t.Errorf("list after remove: %v", got)
	}
	if _, err := e.drv.Get(&volume.GetRequest{Name: "a"}); err == nil {
		t.Errorf("removed volume still answers Get")
	}
}

func TestRegistryPersists(t *testing.T) {
	e := newEnv(t)
	e.create(t, "keep", "db;tls")
	e.create(t, "gone", "x")
	if err := e.drv.Remove(&volume.RemoveRequest{Name: "gone"}); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(e.stateDir, "keep.json")
	st, err := os.Stat(record)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("volume record: %v %v", st, err)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, "gone.json")); !os.IsNotExist(err) {
		t.Errorf("a removed volume's record is left: %v", err)
	}
	before, _ := e.drv.Get(&volume.GetRequest{Name: "keep"})

	d2 := e.newDriver(t)
	if got := names(t, d2); strings.Join(got, ",") != "keep" {
		t.Fatalf("after restart: %v", got)
	}
	after, err := d2.Get(&volume.GetRequest{Name: "keep"})
	if err != nil || after.Volume.Status[driver.OptionSecrets] != "db;tls" || after.Volume.CreatedAt != before.Volume.CreatedAt {
		t.Errorf("after restart: %+v %v", after, err)
	}

	raw, _ := os.ReadFile(record)
	if err := os.WriteFile(record, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := controller.New(controller.Config{Store: e.store, VolumesDir: e.stateDir, MountRoot: e.root, DriverName: driverName}); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("corrupted volume record: %v", err)
	}
	if got, _ := os.ReadFile(record); string(got) != "{not json" {
		t.Errorf("a corrupted volume record was rewritten: %q (was %q)", got, raw)
	}
}

const driverName = "secretd-unit"

// TestMountByContainerLabel: a volume created without options (docker run
// --mount) mounts what the label of the container created with it
// declares, as the engine lists it; containers that disagree fail closed.
func TestMountByContainerLabel(t *testing.T) {
	e := newEnv(t)
	e.secret(t, "db", "db-password")
	e.secret(t, "api", "api-key")
	if err := e.drv.Create(&volume.CreateRequest{Name: "anon"}); err != nil {
		t.Fatal(err)
	}
	e.engine.Set(enginetest.Container("id-web", "web", container.StateCreated, 1, map[string]string{controller.LabelSecrets: "db;source=api,target=keys/api"},
		enginetest.Volume("anon", driverName, "/run/secrets")))
	r, err := e.drv.Mount(&volume.MountRequest{Name: "anon", ID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if files := readAll(t, r.Mountpoint); len(files) != 2 || files["db"] != "db-password" || files["keys/api"] != "api-key" {
		t.Errorf("mounted %v", files)
	}
	g, err := e.drv.Get(&volume.GetRequest{Name: "anon"})
	if err != nil || g.Volume.Status["bound_by"] != controller.BoundByLabel || g.Volume.Status[driver.OptionSecrets] != "db;source=api,target=keys/api" {
		t.Errorf("get: %+v %v", g, err)
	}
	if err := e.drv.Unmount(&volume.UnmountRequest{Name: "anon", ID: "m1"}); err != nil {
		t.Fatal(err)
	}

	if err := e.drv.Create(&volume.CreateRequest{Name: "shared"}); err != nil {
		t.Fatal(err)
	}
	e.engine.Set(
		enginetest.Container("id-a", "a", container.StateCreated, 1, map[string]string{controller.LabelSecrets: "db"}, enginetest.Volume("shared", driverName, "/run/secrets")),
		enginetest.Container("id-b", "b", container.StateCreated, 2, map[string]string{controller.LabelSecrets: "api"}, enginetest.Volume("shared", driverName, "/run/secrets")))
	if _, err := e.drv.Mount(&volume.MountRequest{Name: "shared", ID: "m2"}); err == nil || !strings.Contains(err.Error(), "declare different ones") {
		t.Errorf("mount of a volume whose containers disagree: %v", err)
	}
	if m := mountsUnder(t, e.root); len(m) != 0 {
		t.Errorf("a refused mount left %v", m)
	}
}

// readAll reads a mount's files as strings.
func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	files, err := tmpfs.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range files {
		out[k] = string(v)
	}
	return out
}

func TestMountUnmount(t *testing.T) {
	e := newEnv(t)
	e.secret(t, "db", "db-password")
	e.secret(t, "tls", "-----BEGIN KEY-----")
	e.create(t, "app", "db;source=tls,target=tls/key.pem,mode=0400,uid=1000")
	r, err := e.drv.Mount(&volume.MountRequest{Name: "app", ID: "c0ffee01"})
	if err != nil {
		t.Fatal(err)
	}
	mp := r.Mountpoint
	if mp != filepath.Join(e.root, "c0ffee01") {
		t.Fatalf("mountpoint %s", mp)
	}
	if m := mountsUnder(t, e.root); len(m) != 1 || m[0] != mp {
		t.Fatalf("mounts under root: %v", m)
	}
	files, err := tmpfs.Read(mp)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || string(files["db"]) != "db-password" || string(files["tls/key.pem"]) != "-----BEGIN KEY-----" {
		t.Errorf("files: %q", files)
	}
	if b, err := os.ReadFile(filepath.Join(mp, "tls", "key.pem")); err != nil || string(b) != "-----BEGIN KEY-----" {
		t.Errorf("read through the path: %q %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(mp, "tls", "key.pem")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("mode: %v %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(mp, "db"), []byte("x"), 0o644); err == nil {
		t.Error("the mount is writable")
	}
	p, err := e.drv.Path(&volume.PathRequest{Name: "app"})
	if err != nil || p.Mountpoint != mp {
		t.Errorf("path: %+v %v", p, err)
	}
	g, err := e.drv.Get(&volume.GetRequest{Name: "app"})
	if err != nil || g.Volume.Mountpoint != mp {
		t.Errorf("get: %+v %v", g, err)
	}
	if _, err := e.drv.Mount(&volume.MountRequest{Name: "app", ID: "c0ffee01"}); err == nil || !strings.Contains(err.Error(), "already mounted") {
		t.Errorf("second mount with the same ID: %v", err)
	}

	if err := e.drv.Unmount(&volume.UnmountRequest{Name: "app", ID: "c0ffee01"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(mp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point still there: %v", err)
	}
	if m := mountsUnder(t, e.root); len(m) != 0 {
		t.Errorf("still mounted: %v", m)
	}
	if p, _ := e.drv.Path(&volume.PathRequest{Name: "app"}); p.Mountpoint != "" {
		t.Errorf("path after unmount: %q", p.Mountpoint)
	}
	// dockerd may repeat an Unmount after a timeout.
	if err := e.drv.Unmount(&volume.UnmountRequest{Name: "app", ID: "c0ffee01"}); err != nil {
		t.Errorf("second unmount: %v", err)
	}
}

func TestMountMissingSecret(t *testing.T) {
	e := newEnv(t)
	e.secret(t, "db", "x")
	e.create(t, "app", "db;nosuch")
	_, err := e.drv.Mount(&volume.MountRequest{Name: "app", ID: "m1"})
	if err == nil || err.Error() != "secret 'nosuch' not found" {
		t.Fatalf("mount: %v", err)
	}
	if m := mountsUnder(t, e.root); len(m) != 0 {
		t.Errorf("left mounted: %v", m)
	}
	if _, err := os.Lstat(filepath.Join(e.root, "m1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point left behind: %v", err)
	}
	if p, _ := e.drv.Path(&volume.PathRequest{Name: "app"}); p.Mountpoint != "" {
		t.Errorf("path after a failed mount: %q", p.Mountpoint)
	}
	// The failed claim must not block the next start under the same ID.
	e.secret(t, "nosuch", "late")
	r, err := e.drv.Mount(&volume.MountRequest{Name: "app", ID: "m1"})
	if err != nil {
		t.Fatalf("mount once the secret exists: %v", err)
	}
	if err := e.drv.Unmount(&volume.UnmountRequest{Name: "app", ID: "m1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(r.Mountpoint); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mount point still there: %v", err)
	}
}

func TestMountBadID(t *testing.T) {
	e := newEnv(t)
	e.secret(t, "db", "x")
	e.create(t, "app", "db")
	parent := filepath.Dir(e.root)
	for _, id := range []string{"../x", "..", ".", "", "a/b", "/abs", "a.b", strings.Repeat("a", 129), "sp ace"} {
		if _, err := e.drv.Mount(&volume.MountRequest{Name: "app", ID: id}); err == nil || !strings.Contains(err.Error(), "invalid mount ID") {
			t.Errorf("mount ID %q: %v", id, err)
		}
		if err := e.drv.Unmount(&volume.UnmountRequest{Name: "app", ID: id}); err == nil {
			t.Errorf("unmount with mount ID %q accepted", id)
		}
	}
	if m := mountsUnder(t, filepath.Dir(parent)); len(m) != 0 {
		t.Errorf("mounted: %v", m)
	}
	if _, err := os.Lstat(filepath.Join(parent, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("something was created outside the mount root: %v", err)
	}
}

// TestMountUnknownVolume covers a volume dockerd knows but secretd lost: it
// is recorded again, and with no declaration and no engine it fails closed.
func TestMountUnknownVolume(t *testing.T) {
	e := newEnv(t)
	_, err := e.drv.Mount(&volume.MountRequest{Name: "lost", ID: "m1"})
	if err == nil || !strings.Contains(err.Error(), "declares no secrets") {
		t.Errorf("mount: %v", err)
	}
	if got := names(t, e.drv); strings.Join(got, ",") != "lost" {
		t.Errorf("list: %v", got)
	}
	if m := mountsUnder(t, e.root); len(m) != 0 {
		t.Errorf("mounted: %v", m)
	}
}

func TestCapabilities(t *testing.T) {
	e := newEnv(t)
	if c := e.drv.Capabilities(); c.Capabilities.Scope != "local" {
		t.Errorf("scope %q", c.Capabilities.Scope)
	}
}

// TestPluginProtocol speaks to the driver the way dockerd does, over its
// plugin socket.
func TestPluginProtocol(t *testing.T) {
	e := newEnv(t)
	pluginDir := filepath.Join(t.TempDir(), "plugins")
	if _, err := driver.Listen(pluginDir, "bad/name"); err == nil {
		t.Error("Listen accepted a name with a slash")
	}
	// A stale socket of a crashed daemon is replaced.
	os.MkdirAll(pluginDir, 0o755)
	os.WriteFile(filepath.Join(pluginDir, "secretd-unit.sock"), nil, 0o600)
	l, err := driver.Listen(pluginDir, "secretd-unit")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.drv.Serve(l) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(pluginDir, "secretd-unit.sock"))
	}}}
	call := func(method string, req any) map[string]any {
		t.Helper()
		b, _ := json.Marshal(req)
		resp, err := hc.Post("http://plugin/"+method, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return out
	}
	if out := call("Plugin.Activate", nil); !strings.Contains(strings.Join(toStrings(out["Implements"]), ","), "VolumeDriver") {
		t.Errorf("activate: %v", out)
	}
	if out := call("VolumeDriver.Create", map[string]any{"Name": "v", "Opts": map[string]string{"nope": "1"}}); !strings.Contains(out["Err"].(string), "unknown option") {
		t.Errorf("create with a bad option: %v", out)
	}
	if out := call("VolumeDriver.Create", map[string]any{"Name": "v", "Opts": map[string]string{"secrets": "db"}}); out["Err"] != nil && out["Err"] != "" {
		t.Errorf("create: %v", out)
	}
	if out := call("VolumeDriver.Capabilities", nil); out["Capabilities"].(map[string]any)["Scope"] != "local" {
		t.Errorf("capabilities: %v", out)
	}
	if out := call("VolumeDriver.Mount", map[string]any{"Name": "v", "ID": "m1"}); out["Err"] != "secret 'db' not found" {
		t.Errorf("mount of a missing secret: %v", out)
	}
}

func toStrings(v any) []string {
	var out []string
	if l, ok := v.([]any); ok {
		for _, x := range l {
			out = append(out, x.(string))
		}
	}
	return out
}
