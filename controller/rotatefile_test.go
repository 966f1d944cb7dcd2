package controller_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/declaration"
)

const siteConf = "/etc/nginx/conf.d/site.conf"

// fileVolume creates the one-file volume `secretd run --secret
// src=site.conf,target=/etc/nginx/conf.d/site.conf` makes.
func fileVolume(t *testing.T, e *env, name, onUpdate string) {
	t.Helper()
	decl, file := declaration.FileVolume(declaration.Entry{Source: "site.conf", Target: siteConf, Mode: 0o444})
	if err := e.ctrl.CreateVolume(name, map[string]string{controller.OptionSecrets: decl, declaration.OptionFile: file, controller.OptionOnUpdate: onUpdate}); err != nil {
		t.Fatal(err)
	}
}

// fileMount is the volume mount event of a one-file volume.
func fileMount(volume, containerID string) events.Message {
	m := volumeMount(volume, containerID)
	m.Actor.Attributes["destination"] = siteConf
	return m
}

// fileUser is a running container with the one-file volume at siteConf.
func fileUser(id, name, volume, dir string) container.Summary {
	c := ctr(id, name, container.StateRunning, 1, "", volume+"="+dir)
	c.Mounts[0].Destination = siteConf
	return c
}

// readHeld reads the file an open descriptor holds, as a container reads
// the inode the engine bind-mounted.
func readHeld(t *testing.T, f *os.File) string {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A rotation cannot reach a file bound at an absolute target: the
// container holds the inode it started with. Rotate says so rather than
// counting it as done: it names each such container with the file's full
// path, and whether it gets the version at its next start or at the
// restart its volume's on-update asks for now. The container's file is
// left whole, and `secretd ps` shows the version it holds and where.
func TestRotationReportsBoundFiles(t *testing.T) {
	acts := &fakeActions{}
	e := newEnv(t, 0, withActions(acts))
	e.secret(t, "site.conf", "server v1")
	fileVolume(t, e, "vfile", "none")
	fileVolume(t, e, "vfile2", "restart")
	s := e.run(t)
	dir := e.mount(t, "vfile", "m1")
	e.mount(t, "vfile2", "m2")
	s.Send(t, fileMount("vfile", "id-nginx"))
	s.Send(t, containerStart("id-nginx", "nginx", nil))
	s.Send(t, fileMount("vfile2", "id-nginx2"))
	s.Send(t, containerStart("id-nginx2", "nginx2", nil))
	s.Sync(t)
	f, err := os.Open(filepath.Join(dir, "site.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	sec, err := e.store.Update("site.conf", []byte("server v2"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := e.ctrl.Rotate(context.Background(), sec)
	if err != nil {
		t.Fatal(err)
	}
	if rot.Version != 2 || rot.Updated != 0 || len(rot.Containers) != 2 {
		t.Fatalf("report %+v, want version 2, none updated in place, two containers named", rot)
	}
	first, second := rot.Containers[0], rot.Containers[1]
	if first.ContainerName != "nginx" || first.ContainerID != "id-nginx" || first.Gets != api.RotationNextStart ||
		!slices.Equal(first.Targets, []string{siteConf}) || !strings.Contains(first.Reason, siteConf) || !strings.Contains(first.Reason, "secretd.on-update=restart") {
		t.Errorf("first %+v, want nginx at its next start, naming %s", first, siteConf)
	}
	if second.ContainerName != "nginx2" || second.Gets != api.RotationRestarting || !slices.Equal(second.Targets, []string{siteConf}) {
		t.Errorf("second %+v, want nginx2 restarting", second)
	}
	if n := first.Notice("secret 'site.conf'", 2); n != "nginx gets version 2 of secret 'site.conf' at its next start: "+first.Reason {
		t.Errorf("notice %q", n)
	}
	waitFor(t, "the restart on-update asked for", func() bool { return slices.Equal(acts.done(), []string{"restart id-nginx2"}) })
	if got := readHeld(t, f); got != "server v1" {
		t.Errorf("the container's bound file reads %q after the rotation, want the version it started with", got)
	}
	for _, task := range e.ctrl.Tasks() {
		if len(task.Secrets) != 1 || task.Secrets[0].Version != 1 || task.Secrets[0].Target != siteConf {
			t.Errorf("ps shows %s holding %+v, want version 1 at %s", task.ContainerName, task.Secrets, siteConf)
		}
	}
	// The next start gets the new version.
	if err := e.ctrl.Unmount("vfile", "m1"); err != nil {
		t.Fatal(err)
	}
	dir3 := e.mount(t, "vfile", "m3")
	if got := readFiles(t, dir3); got["site.conf"] != "server v2" {
		t.Errorf("the next start reads %v", got)
	}
	e.ctrl.Unmount("vfile", "m3")
	e.ctrl.Unmount("vfile2", "m2")
}

// A daemon restarted after a rotation that left a bound file for its
// container's next start adopts the mount without rewriting it: a rewrite
// would link the new version where the container never looks and zero the
// file it reads. It learns which kept version the file holds, for `ps`.
// Before, the adoption's refresh rewrote it, and the container's
// /etc/nginx/conf.d/site.conf read zeros.
func TestAdoptedBoundFileIsLeftWhole(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "site.conf", "server v1")
	fileVolume(t, e, "vfile", "none")
	dir := e.mount(t, "vfile", "m1")
	f, err := os.Open(filepath.Join(dir, "site.conf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := e.store.Update("site.conf", []byte("server v2"), 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Update("site.conf", []byte("server v3"), 0, nil); err != nil {
		t.Fatal(err)
	}

	restarted := mustNew(t, e.cfg)
	e.engine.Set(fileUser("id-nginx", "nginx", "vfile", dir))
	if err := restarted.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := readHeld(t, f); got != "server v1" {
		t.Errorf("after the adoption the container's bound file reads %q, want server v1", got)
	}
	tasks := restarted.Tasks()
	if len(tasks) != 1 || tasks[0].ContainerName != "nginx" || len(tasks[0].Secrets) != 1 ||
		tasks[0].Secrets[0].Version != 1 || tasks[0].Secrets[0].Target != siteConf {
		t.Errorf("ps after the adoption: %+v, want nginx holding version 1 at %s", tasks, siteConf)
	}
	if err := restarted.Unmount("vfile", "m1"); err != nil {
		t.Fatal(err)
	}
}

// A bound file rendered from a template that reads the rotated secret is
// left for its next start too, and named: the secret is not its entry, but
// what its rendering read.
func TestRotationReportsRenderedBoundFile(t *testing.T) {
	e := newEnv(t, 0)
	e.secret(t, "db_password", "hunter2")
	e.config(t, "app.ini", "password = {{ secret \"db_password\" }}\n", true)
	scope := "source=db_password,target=db_password,uid=0,gid=0,mode=0444;config=app.ini,target=/etc/app/app.ini,uid=0,gid=0,mode=0444"
	e.volume(t, "file", map[string]string{controller.OptionConfigs: "source=app.ini,target=app.ini", "file": "app.ini",
		controller.OptionScope: scope, controller.OptionOnUpdate: "none"})
	dir := e.mount(t, "file", "m1")
	app := ctr("id-app", "app", container.StateRunning, 1, "", "file="+dir)
	app.Mounts[0].Destination = "/etc/app/app.ini"
	e.engine.Set(app)
	if err := e.ctrl.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	sec, err := e.store.Update("db_password", []byte("hunter3"), 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	rot, err := e.ctrl.Rotate(context.Background(), sec)
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Containers) != 1 || rot.Containers[0].ContainerName != "app" || rot.Containers[0].Gets != api.RotationNextStart ||
		!slices.Equal(rot.Containers[0].Targets, []string{"/etc/app/app.ini"}) {
		t.Errorf("report %+v, want app at its next start at /etc/app/app.ini", rot)
	}
	if got := readFiles(t, dir); got["app.ini"] != "password = hunter2\n" {
		t.Errorf("the bound rendering was rewritten: %v", got)
	}
	e.ctrl.Unmount("file", "m1")
}
