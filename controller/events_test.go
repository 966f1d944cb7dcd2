package controller_test

import (
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/secretd/secretd/internal/enginesim"
)

// TestEventsOfEachEngine follows one container through the events of each
// engine profile: Engine 20.10's carry the legacy status, id and from;
// Engine 29's (API 1.52) carry only Type, Action and Actor. The controller
// must read the same from both: the volume mount names the container of
// the mount, start its name, rename the new one, destroy wipes it.
func TestEventsOfEachEngine(t *testing.T) {
	for _, p := range enginesim.Profiles {
		t.Run(p.Name, func(t *testing.T) {
			e := newEnv(t, time.Hour)
			e.secret(t, "a", "secret-a")
			e.vols.set("optvol", "source=a,target=db")
			s := e.run(t)
			e.engine.set(ctr("id-opt", "opt", container.StateCreated, 1, "", "optvol"))
			dir := e.mount(t, "optvol", "m1")
			send := func(typ events.Type, action events.Action, id string, attrs map[string]string) {
				t.Helper()
				s.send(t, p.Message(typ, action, events.Actor{ID: id, Attributes: attrs}))
				s.sync(t)
			}
			task := func() (id, name string) {
				t.Helper()
				tasks := e.ctrl.Tasks()
				if len(tasks) != 1 {
					t.Fatalf("tasks: %+v, want the one of m1", tasks)
				}
				return tasks[0].ContainerID, tasks[0].ContainerName
			}

			send(events.VolumeEventType, events.ActionMount, "optvol", map[string]string{
				"container": "id-opt", "driver": driverName, "destination": "/run/secrets", "read/write": "true", "propagation": ""})
			if id, _ := task(); id != "id-opt" {
				t.Errorf("after the volume mount event the task's container is %q, want id-opt", id)
			}
			send(events.ContainerEventType, events.ActionStart, "id-opt", map[string]string{"name": "opt", "image": "busybox"})
			if id, name := task(); id != "id-opt" || name != "opt" {
				t.Errorf("after start: container %q named %q, want id-opt named opt", id, name)
			}
			send(events.ContainerEventType, events.ActionRename, "id-opt", map[string]string{"name": "renamed", "oldName": "/opt", "image": "busybox"})
			if _, name := task(); name != "renamed" {
				t.Errorf("after rename: named %q, want renamed", name)
			}
			send(events.ContainerEventType, events.ActionDestroy, "id-opt", map[string]string{"name": "renamed", "image": "busybox"})
			gone(t, e.root, dir)
			if tasks := e.ctrl.Tasks(); len(tasks) != 0 || slices.Contains(mountsUnder(t, e.root), dir) {
				t.Errorf("after destroy: tasks %+v, mounts %v", tasks, mountsUnder(t, e.root))
			}
		})
	}
}
