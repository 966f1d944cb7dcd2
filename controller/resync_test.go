package controller

import (
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// TestPlanResync: what a resync decides for each kind of mount it finds,
// from the engine's list, the table and the records alone.
func TestPlanResync(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	const grace = 30 * time.Second
	summary := func(id, state string, vols ...string) container.Summary {
		s := container.Summary{ID: id, Names: []string{"/" + id}, State: container.ContainerState(state)}
		for _, v := range vols {
			s.Mounts = append(s.Mounts, container.MountPoint{Type: "volume", Name: v, Driver: "secretd"})
		}
		return s
	}
	list := []container.Summary{
		summary("alive", "running", "v1"),
		summary("dead", "exited", "v2"),
		summary("shared1", "running", "v3"),
		summary("shared2", "running", "v3"),
		summary("other", "running", "v4"),
	}
	f := survey(list, func(m container.MountPoint) bool { return m.Driver == "secretd" })
	old := now.Add(-time.Hour)
	disk := func(name string, rec taskRecord) foundMount {
		return foundMount{dir: "/root/" + name, name: name, mine: true, rec: &rec}
	}
	inTable := func(name string, state taskState, containerID string, since time.Time, volume string) foundMount {
		tk := newTask(name, volume, "/root/"+name, nil)
		tk.state, tk.containerID, tk.since = state, containerID, since
		v := tk.view()
		return foundMount{dir: v.dir, name: name, mine: true, task: tk, view: v,
			rec: &taskRecord{MountID: name, Volume: volume, ContainerID: containerID, Since: since}}
	}
	for _, tc := range []struct {
		name  string
		mount foundMount
		want  resyncStep
		owner string
		after time.Duration
	}{
		{"spare", foundMount{dir: "/root/spare.1", name: "spare.1", spare: true, rec: &taskRecord{}}, skipSpare, "", 0},
		{"not secretd's", foundMount{dir: "/root/x", name: "x", rec: &taskRecord{}}, leaveForeign, "", 0},
		{"record of a live container: adopted", disk("m1", taskRecord{MountID: "m1", Volume: "v1", ContainerID: "alive", Since: old}), adopt, "alive", 0},
		{"record naming no container, one live user: adopted by it", disk("m2", taskRecord{MountID: "m2", Volume: "v1", Since: old}), adopt, "alive", 0},
		{"record naming no container, two live users: adopted unnamed", disk("m3", taskRecord{MountID: "m3", Volume: "v3", Since: old}), adopt, "", 0},
		{"record of a dead container", disk("m4", taskRecord{MountID: "m4", Volume: "v2", ContainerID: "dead", Since: old}), wipeIt, "", 0},
		{"record of a container that does not mount the volume", disk("m5", taskRecord{MountID: "m5", Volume: "v2", ContainerID: "alive", Since: old}), wipeIt, "", 0},
		{"no record", disk("m6", taskRecord{}), wipeIt, "", 0},
		{"young record of no live container: a start", disk("m7", taskRecord{MountID: "m7", Volume: "v2", Since: now.Add(-10 * time.Second)}), keepStarting, "", 20*time.Second + 100*time.Millisecond},
		{"task without a container, one live user: claimed", inTable("m8", mounted, "", old, "v1"), claimIt, "alive", 0},
		{"task of its container", inTable("m9", mounted, "alive", old, "v1"), keep, "", 0},
		{"task without a container, two live users: stays unnamed", inTable("m10", mounted, "", old, "v3"), keep, "", 0},
		{"task still mounting, no live user", inTable("m11", mounting, "", old, "v2"), keepStarting, "", grace - time.Hour + 100*time.Millisecond},
		{"task of a dead container", inTable("m12", mounted, "dead", old, "v2"), wipeIt, "", 0},
		{"task claimed by another container of the volume", inTable("m13", mounted, "other", old, "v1"), wipeIt, "", 0},
	} {
		plan := planResync([]foundMount{tc.mount}, nil, f, now, grace)
		if len(plan) != 1 {
			t.Errorf("%s: %d steps, want 1", tc.name, len(plan))
			continue
		}
		a := plan[0]
		if a.step != tc.want || a.owner.ID != tc.owner || a.after != tc.after {
			t.Errorf("%s: step %d owner %q after %v; want step %d owner %q after %v", tc.name, a.step, a.owner.ID, a.after, tc.want, tc.owner, tc.after)
		}
	}
}

// TestPlanResyncDropsOnlyTasksMountedBeforeTheListing: a task whose tmpfs
// is not among the mounts listed leaves the table only if it was mounted
// before the listing; a Mount that filled its task since is left alone.
func TestPlanResyncDropsOnlyTasksMountedBeforeTheListing(t *testing.T) {
	vanished := newTask("gone", "v", "/root/gone", nil)
	vanished.state = mounted
	listed := newTask("here", "v", "/root/here", nil)
	listed.state = mounted
	starting := newTask("new", "v", "/root/new", nil) // mounting at the listing
	var before []foundMount
	for _, tk := range []*task{vanished, listed, starting} {
		v := tk.view()
		before = append(before, foundMount{dir: v.dir, name: dirBase(v.dir), mine: true, task: tk, view: v})
	}
	found := []foundMount{{dir: "/root/here", name: "here", mine: true, task: listed, view: listed.view(),
		rec: &taskRecord{MountID: "here", Volume: "v", ContainerID: "c1"}}}
	f := survey([]container.Summary{{ID: "c1", State: container.StateRunning, Mounts: []container.MountPoint{{Type: "volume", Name: "v"}}}},
		func(container.MountPoint) bool { return true })
	var drops []string
	for _, a := range planResync(found, before, f, time.Now(), time.Second) {
		if a.step == dropTask {
			drops = append(drops, a.mount.task.mountID)
		}
	}
	if len(drops) != 1 || drops[0] != "gone" {
		t.Fatalf("dropped %v, want only the task whose tmpfs vanished", drops)
	}
}
