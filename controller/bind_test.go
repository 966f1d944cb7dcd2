package controller_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/enginesim"
	"github.com/secretd/secretd/internal/enginetest"
)

func containerCreate(id string, labels ...map[string]string) events.Message {
	attrs := map[string]string{}
	for _, l := range labels {
		maps.Copy(attrs, l)
	}
	return enginetest.ContainerEvent(events.ActionCreate, id, attrs)
}

// TestLabelBindsOnce: a label volume binds at its first Mount, with one
// lookup, and from then on mounts its stored declaration with no engine
// call, whatever the engine says or fails to say.
func TestLabelBindsOnce(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	e.secret(t, "b", "secret-b")
	e.vols.anon("vol")
	e.engine.Set(ctr("id-a", "a", container.StateCreated, 1, "a", "vol"))
	dir := e.mount(t, "vol", "m1")
	if got := readFiles(t, dir); len(got) != 1 || got["a"] != "secret-a" {
		t.Fatalf("first mount %v", got)
	}
	v, _ := e.ctrl.Volume("vol")
	if v.Declaration != "a" || v.BoundBy != controller.BoundByLabel || v.BoundTo != "id-a" {
		t.Errorf("bound %+v", v)
	}
	if n := e.engine.Counts().VolumeLists; n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
	if err := e.ctrl.Unmount("vol", "m1"); err != nil {
		t.Fatal(err)
	}
	// Another container now uses the volume with another label, and then
	// the engine stops answering: neither changes the volume's mount.
	e.engine.Set(ctr("id-a", "a", container.StateExited, 1, "a", "vol"), ctr("id-b", "b", container.StateCreated, 2, "b", "vol"))
	dir = e.mount(t, "vol", "m2")
	if got := readFiles(t, dir); len(got) != 1 || got["a"] != "secret-a" {
		t.Errorf("second container got %v, want the volume's declaration (a)", got)
	}
	e.engine.SetListErr(errors.New("engine hung"))
	e.ctrl.Unmount("vol", "m2")
	dir = e.mount(t, "vol", "m3")
	if got := readFiles(t, dir); len(got) != 1 || got["a"] != "secret-a" {
		t.Errorf("with the engine silent got %v", got)
	}
	if n := e.engine.Counts().VolumeLists; n != 1 {
		t.Errorf("%d lookups in the volume's life, want 1", n)
	}
	e.ctrl.Unmount("vol", "m3")
}

// TestOlderContainerStartAfterRestart is the `docker start` of an older
// container whose anonymous volume a newer one also uses (--volumes-from),
// after a restart of secretd: the volume's declaration is the older one's,
// never the newer container's (the old "newest container not running"
// rule mounted the newer label into the older container).
func TestOlderContainerStartAfterRestart(t *testing.T) {
	eachProfile(t, testOlderContainerStartAfterRestart)
}

func testOlderContainerStartAfterRestart(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, 0)
	e.secret(t, "first", "first-value")
	e.secret(t, "second", "second-value")
	e.vols.anon("vol")
	s := e.run(t)
	old := ctr("id-old", "old", container.StateCreated, 1, "first", "vol")
	e.engine.Set(old)
	// dockerd's create event carries the container's labels.
	s.Send(t, containerCreate("id-old", old.Labels))
	s.Sync(t)
	e.ctrl.WaitLearning()
	if v, _ := e.ctrl.Volume("vol"); v.Declaration != "first" {
		t.Fatalf("not bound at the create event: %+v", v)
	}
	// secretd restarts; the older container has exited, the newer one
	// borrows its volume and runs.
	next, err := newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ctrl = next
	e.engine.Set(
		ctr("id-old", "old", container.StateExited, 1, "first", "vol"),
		ctr("id-new", "new", container.StateRunning, 2, "second", "vol"),
	)
	before := e.engine.Counts().VolumeLists
	dir := e.mount(t, "vol", "m-old")
	if got := readFiles(t, dir); len(got) != 1 || got["first"] != "first-value" {
		t.Errorf("older container got %v, want only its own first", got)
	}
	if e.engine.Counts().VolumeLists != before {
		t.Error("the Mount of a bound volume asked the engine")
	}
	e.ctrl.Unmount("vol", "m-old")
}

// TestCreateEventBinds: the create event of a container binds its unbound
// volumes off the start path, so even its first Mount asks nothing.
func TestCreateEventBinds(t *testing.T) { eachProfile(t, testCreateEventBinds) }

func testCreateEventBinds(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, 0)
	e.secret(t, "a", "secret-a")
	e.vols.anon("v1")
	e.vols.anon("v2")
	s := e.run(t)
	c, nolabel := ctr("id-c", "c", container.StateCreated, 1, "a", "v1"), ctr("id-nolabel", "nolabel", container.StateCreated, 2, "", "v2")
	e.engine.Set(c, nolabel)
	s.Send(t, containerCreate("id-c", c.Labels))
	s.Send(t, containerCreate("id-nolabel", nolabel.Labels))
	s.Sync(t)
	e.ctrl.WaitLearning()
	e.engine.SetListErr(errors.New("engine busy"))
	before := e.engine.Counts().VolumeLists
	dir := e.mount(t, "v1", "m1")
	if got := readFiles(t, dir); got["a"] != "secret-a" {
		t.Errorf("mounted %v", got)
	}
	if e.engine.Counts().VolumeLists != before {
		t.Error("the first Mount asked the engine after the create event bound the volume")
	}
	// A container without a label leaves its volume unbound: the Mount
	// asks, and with the engine silent fails closed.
	if _, err := e.ctrl.Mount(context.Background(), "v2", "m2"); err == nil || !strings.Contains(err.Error(), "did not answer") {
		t.Errorf("unbound volume with the engine silent: %v", err)
	}
	e.ctrl.Unmount("v1", "m1")
}

// TestCreateEventBindsInOneCall: a create event asks the engine once, for
// the users of every unbound volume, and binds each volume whose users
// agree; a volume whose container is not created yet stays unbound.
func TestCreateEventBindsInOneCall(t *testing.T) { eachProfile(t, testCreateEventBindsInOneCall) }

func testCreateEventBindsInOneCall(t *testing.T, p *enginesim.Profile) {
	e := newEnvOn(t, p, 0)
	e.secret(t, "a", "secret-a")
	e.secret(t, "b", "secret-b")
	for _, v := range []string{"v1", "v2", "v3"} {
		e.vols.anon(v)
	}
	s := e.run(t)
	c1, c2 := ctr("id-c1", "c1", container.StateCreated, 1, "a", "v1"), ctr("id-c2", "c2", container.StateCreated, 2, "b", "v2")
	e.engine.Set(c1, c2)
	n0 := e.engine.Counts()
	s.Send(t, containerCreate("id-c1", c1.Labels))
	s.Sync(t)
	e.ctrl.WaitLearning()
	n1 := e.engine.Counts()
	volumeLists, idLists := n1.VolumeLists-n0.VolumeLists, n1.IDLists-n0.IDLists
	if volumeLists != 1 || idLists != 0 {
		t.Errorf("the create event made %d lists by volume and %d by ID, want one by volume", volumeLists, idLists)
	}
	for name, want := range map[string]string{"v1": "a", "v2": "b", "v3": ""} {
		if v, _ := e.ctrl.Volume(name); v.Declaration != want || v.Bound() != (want != "") {
			t.Errorf("volume %s: %+v, want declaration %q", name, v, want)
		}
	}
	// A container that mounts no unbound volume is looked up by ID, to
	// warn when it mounts no secretd volume at all.
	plain := ctr("id-plain", "plain", container.StateCreated, 3, "a")
	e.engine.Set(c1, c2, plain)
	s.Send(t, containerCreate("id-plain", plain.Labels))
	s.Sync(t)
	e.ctrl.WaitLearning()
	if n := e.engine.Counts().IDLists; n != 1 {
		t.Errorf("%d lists by ID for a container outside the batch, want 1", n)
	}
}

// TestImageLabelsDeclareNothing: a declaration or on-update action that a
// container only inherits from its image's LABELs is refused.
func TestImageLabelsDeclareNothing(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	e.engine.SetImageLabels("sha256:busybox", map[string]string{controller.LabelSecrets: "a"})
	e.engine.Set(ctr("id-img", "img", container.StateCreated, 1, "a", "vol"))
	_, err := e.ctrl.Mount(context.Background(), "vol", "m1")
	if err == nil || !strings.Contains(err.Error(), "comes from its image") || !strings.Contains(err.Error(), "--label "+controller.LabelSecrets) || !strings.Contains(err.Error(), "-o secrets=") {
		t.Errorf("image declaration: %v", err)
	}
	// The container's own label, different from the image's, binds.
	e.engine.Set(ctr("id-own", "own", container.StateCreated, 1, "source=a,target=mine", "vol2"))
	dir := e.mount(t, "vol2", "m2")
	if got := readFiles(t, dir); got["mine"] != "secret-a" {
		t.Errorf("mounted %v", got)
	}
	e.ctrl.Unmount("vol2", "m2")
	// An on-update action from the image only is refused too.
	// An image ID names its content: another LABEL is another image.
	e.engine.SetImageLabels("sha256:restarting", map[string]string{controller.LabelOnUpdate: "restart"})
	c := ctr("id-upd", "upd", container.StateCreated, 1, "a", "vol3")
	c.ImageID = "sha256:restarting"
	c.Labels[controller.LabelOnUpdate] = "restart"
	e.engine.Set(c)
	if _, err := e.ctrl.Mount(context.Background(), "vol3", "m3"); err == nil || !strings.Contains(err.Error(), controller.LabelOnUpdate) {
		t.Errorf("image on-update: %v", err)
	}
	// An image that cannot be inspected fails closed.
	e.engine.SetImageErr(errors.New("engine hung"))
	x := ctr("id-x", "x", container.StateCreated, 1, "a", "vol4")
	x.ImageID = "sha256:unseen"
	e.engine.Set(x)
	if _, err := e.ctrl.Mount(context.Background(), "vol4", "m4"); err == nil || !strings.Contains(err.Error(), "image labels") {
		t.Errorf("image not inspected: %v", err)
	}
}

// TestRegistryMigrates: a state file of the earlier format (name, options,
// created) loads with option volumes bound and label volumes unbound; the
// first resync binds the label volumes in use, and moves the earlier
// per-container grants onto their volumes.
func TestRegistryMigrates(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	e.secret(t, "b", "secret-b")
	dir := filepath.Dir(e.cfg.VolumesDir)
	old := `{"opt":{"name":"opt","options":{"secrets":"a;b"},"created":"2026-01-01T00:00:00Z"},"anon":{"name":"anon","created":"2026-01-01T00:00:00Z"}}`
	oldFile := filepath.Join(dir, "volumes.json")
	if err := os.WriteFile(oldFile, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	legacy := filepath.Join(dir, "containers.json")
	if err := os.WriteFile(legacy, []byte(`{"id-opt":{"remove":["b"]},"id-gone":{"add":["a"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.LegacyGrantsFile, cfg.LegacyVolumesFile = legacy, oldFile
	c, err := newController(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.ctrl = c
	if _, err := os.Stat(oldFile); !os.IsNotExist(err) {
		t.Errorf("the earlier volumes file is left after its volumes moved: %v", err)
	}
	for _, name := range []string{"opt", "anon"} {
		if _, err := os.Stat(filepath.Join(e.cfg.VolumesDir, name+".json")); err != nil {
			t.Errorf("volume %s not moved into the directory: %v", name, err)
		}
	}
	if v, _ := c.Volume("opt"); v.Declaration != "a;b" || v.BoundBy != controller.BoundByOption {
		t.Errorf("option volume after load: %+v", v)
	}
	if v, _ := c.Volume("anon"); v.Bound() {
		t.Errorf("label volume bound at load: %+v", v)
	}
	e.engine.Set(ctr("id-opt", "optc", container.StateExited, 1, "", "opt"), ctr("id-anon", "anonc", container.StateExited, 2, "b", "anon"))
	if err := c.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Volume("anon"); v.Declaration != "b" || v.BoundTo != "id-anon" {
		t.Errorf("label volume after resync: %+v", v)
	}
	if v, _ := c.Volume("opt"); len(v.Revokes) != 1 || v.Revokes[0] != "b" {
		t.Errorf("legacy revoke not moved: %+v", v)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("legacy grants file left after migration: %v", err)
	}
	e.engine.SetListErr(errors.New("down"))
	d := e.mount(t, "opt", "m1")
	if got := readFiles(t, d); len(got) != 1 || got["a"] != "secret-a" {
		t.Errorf("opt mounts %v, want a only", got)
	}
	d = e.mount(t, "anon", "m2")
	if got := readFiles(t, d); len(got) != 1 || got["b"] != "secret-b" {
		t.Errorf("anon mounts %v", got)
	}
	c.Unmount("opt", "m1")
	c.Unmount("anon", "m2")
}

// TestResyncKeepsSharedVolumeMount: a mount of a volume two live
// containers use, whose mount event was missed, is kept by a resync (it is
// one of theirs) and left unnamed rather than given to either.
func TestResyncKeepsSharedVolumeMount(t *testing.T) {
	e := newEnv(t, time.Nanosecond)
	e.secret(t, "a", "x")
	e.vols.set("shared", "a")
	dir := e.mount(t, "shared", "m1")
	e.engine.Set(ctr("id-1", "one", container.StateRunning, 1, "", "shared="+dir), ctr("id-2", "two", container.StateRunning, 2, "", "shared"))
	time.Sleep(time.Millisecond)                                            // past Grace
	for _, c := range []*controller.Controller{e.ctrl, mustNew(t, e.cfg)} { // this run, and after a restart
		if err := c.Resync(context.Background()); err != nil {
			t.Fatal(err)
		}
		tasks := c.Tasks()
		if len(tasks) != 1 || tasks[0].Mount != dir || tasks[0].ContainerID != "" {
			t.Errorf("tasks after resync: %+v", tasks)
		}
	}
	if got := mountsUnder(t, e.root); len(got) != 1 {
		t.Errorf("mounts after resync: %v", got)
	}
	e.ctrl.Unmount("shared", "m1")
}

func mustNew(t *testing.T, cfg controller.Config) *controller.Controller {
	t.Helper()
	c, err := newController(t, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestImageLabelsAskedOncePerImage: an image ID names its content, labels
// included, so bindings of many containers of one image inspect it once.
func TestImageLabelsAskedOncePerImage(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	for i, v := range []string{"v1", "v2", "v3"} {
		e.engine.Set(ctr(fmt.Sprintf("id-%d", i), fmt.Sprintf("c%d", i), container.StateCreated, int64(i), "a", v))
		e.mount(t, v, "m-"+v)
		e.ctrl.Unmount(v, "m-"+v)
	}
	if n := e.engine.Counts().ImageInspects; n != 1 {
		t.Errorf("%d image inspects for three bindings of one image, want 1", n)
	}
}

// TestEmptyVolumeRecordIsUnbound: a learned binding is saved without a
// sync, so a host crash can leave its record empty. The daemon still
// starts, with the volume unbound, and the rule binds it again; a record
// that is not empty but does not parse still stops it.
func TestEmptyVolumeRecordIsUnbound(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "b", "secret-b")
	if err := os.WriteFile(filepath.Join(e.cfg.VolumesDir, "anon.json"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := newController(t, e.cfg)
	if err != nil {
		t.Fatalf("an empty volume record stopped the start: %v", err)
	}
	e.ctrl = c
	if v, ok := c.Volume("anon"); !ok || v.Bound() {
		t.Fatalf("empty record loads as %+v (known: %v), want an unbound volume", v, ok)
	}
	e.engine.Set(ctr("id-anon", "anonc", container.StateRunning, 1, "b", "anon"))
	if err := c.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Volume("anon"); v.Declaration != "b" || v.BoundTo != "id-anon" {
		t.Errorf("volume after resync: %+v, want bound to id-anon's declaration", v)
	}
	d := e.mount(t, "anon", "m1")
	if got := readFiles(t, d); len(got) != 1 || got["b"] != "secret-b" {
		t.Errorf("anon mounts %v, want b", got)
	}
	c.Unmount("anon", "m1")

	if err := os.WriteFile(filepath.Join(e.cfg.VolumesDir, "torn.json"), []byte(`{"name":"torn","opt`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newController(t, e.cfg); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("a record that does not parse: %v, want the start refused", err)
	}
}

// TestStartupLearnsAndSavesEveryBinding: a startup resync on a host whose
// volumes secretd never saw binds each to its container's label, and
// saves every binding, for a restart to load, from one goroutine rather
// than one per volume.
func TestStartupLearnsAndSavesEveryBinding(t *testing.T) {
	const n = 300
	e := newEnv(t, 0)
	e.secret(t, "b", "secret-b")
	var cs []container.Summary
	for i := range n {
		cs = append(cs, ctr(fmt.Sprintf("id-%d", i), fmt.Sprintf("c%d", i), container.StateRunning, int64(i+1), "b", fmt.Sprintf("vol%d", i)))
	}
	e.engine.Set(cs...)
	before := runtime.NumGoroutine()
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if g := runtime.NumGoroutine(); g > before+10 {
		t.Errorf("%d goroutines after learning %d bindings, %d before: the saves should queue", g, n, before)
	}
	e.ctrl.WaitLearning()
	c, err := newController(t, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := fmt.Sprintf("vol%d", i)
		if v, ok := c.Volume(name); !ok || v.Declaration != "b" || v.BoundTo != fmt.Sprintf("id-%d", i) {
			t.Fatalf("after a restart %s is %+v (known: %v), want bound to id-%d's declaration", name, v, ok, i)
		}
	}
}

// TestCreateEventBindsPastAStaleLookup: a lookup that took the engine's
// answer before a container existed cannot bind that container's volume.
// The container's own create event binds it at once, without waiting for
// that lookup to end, and a Mount waiting on the stale lookup wakes when
// the volume is bound, with no call of its own.
func TestCreateEventBindsPastAStaleLookup(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "a", "secret-a")
	e.vols.anon("vol")
	s := e.run(t)
	held, release := make(chan struct{}, 8), make(chan struct{})
	e.engine.SetVolumeListHook(func(_ []string, answer []container.Summary) {
		if len(answer) == 0 { // taken before the volume's container existed
			held <- struct{}{}
			<-release
		}
	})
	t.Cleanup(func() { close(release) })

	// Another container's create event asks about the unbound volume and
	// finds no user: its answer is held, as a slow engine's would be.
	other := ctr("id-other", "other", container.StateCreated, 1, "")
	e.engine.Set(other)
	s.Send(t, containerCreate("id-other", other.Labels))
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("the create event did not ask about the unbound volume")
	}
	before := e.engine.Counts().VolumeLists

	// The volume's container is created and started: its Mount finds the
	// stale lookup under way and waits for it.
	c := ctr("id-c", "c", container.StateCreated, 2, "a", "vol")
	e.engine.Set(other, c)
	type result struct {
		dir string
		err error
	}
	mounted := make(chan result, 1)
	go func() {
		dir, err := e.ctrl.Mount(context.Background(), "vol", "m1")
		mounted <- result{dir, err}
	}()
	s.Send(t, containerCreate("id-c", c.Labels))
	select {
	case r := <-mounted:
		if r.err != nil {
			t.Fatal(r.err)
		}
		if got := readFiles(t, r.dir); len(got) != 1 || got["a"] != "secret-a" {
			t.Errorf("mounted %v, want a", got)
		}
		e.ctrl.Unmount("vol", "m1")
	case <-time.After(10 * time.Second):
		t.Fatal("the Mount still waits, behind the lookup that could not see its container")
	}
	if v, _ := e.ctrl.Volume("vol"); v.Declaration != "a" || v.BoundTo != "id-c" {
		t.Errorf("bound %+v, want a, to id-c", v)
	}
	// The container's create event asked once; a Mount that got there
	// first may have asked once itself, never both plus a retry.
	if n := e.engine.Counts().VolumeLists - before; n < 1 || n > 2 {
		t.Errorf("%d lists by volume after the stale one, want the create event's (and at most the Mount's)", n)
	}
}
