package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/declaration"
)

// taskState is where a task is in its life.
type taskState int

const (
	// mounting: Mount took the claim and is building the tmpfs; the claim
	// comes first so `secret rm` cannot slip in between.
	mounting taskState = iota
	// mounted: the tmpfs holds the task's files.
	mounted
	// unmounting: Unmount is wiping it; nothing may write it any more.
	unmounting
)

func (s taskState) String() string {
	switch s {
	case mounting:
		return "mounting"
	case mounted:
		return "mounted"
	case unmounting:
		return "unmounting"
	}
	return "unknown"
}

// task is one mount of secrets into one container start. Every field but
// mu is read and written under Controller.mu; code that needs several
// fields outside it takes a snapshot.
type task struct {
	mountID string
	volume  string
	dir     string
	state   taskState
	// containerID is "" until the engine's volume mount event, a resync
	// or an adoption names the container; name, image and onUpdate come
	// from its start event or a resync.
	containerID string
	name        string
	image       string
	onUpdate    OnUpdate
	since       time.Time
	entries     []declaration.Entry
	// versions and ids hold what is mounted for each entry, by index; nil
	// when the content may not match entries (adopted after a restart, or
	// entries changed live), so the next refresh rewrites it.
	versions []int
	ids      []string

	// mu serialises changes of the mount's content (Mount, rotations,
	// live grants, Unmount), so an older file set never lands after a
	// newer one and nothing writes a mount being wiped.
	mu sync.Mutex
}

// snapshot is a copy of a task's fields, for use outside Controller.mu.
type snapshot struct {
	mountID, volume, dir, containerID, name, image string
	state                                          taskState
	onUpdate                                       OnUpdate
	since                                          time.Time
	entries                                        []declaration.Entry
	versions                                       []int
	ids                                            []string
}

// snapUnlocked copies t, taking c.mu.
func (t *task) snapUnlocked(c *Controller) snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return t.snap()
}

// snap copies t; c.mu held.
func (t *task) snap() snapshot {
	return snapshot{
		mountID: t.mountID, volume: t.volume, dir: t.dir, containerID: t.containerID, name: t.name, image: t.image,
		state: t.state, onUpdate: t.onUpdate, since: t.since,
		entries: slices.Clone(t.entries), versions: slices.Clone(t.versions), ids: slices.Clone(t.ids),
	}
}

func (s snapshot) apiTask() api.Task {
	out := api.Task{
		ContainerID: s.containerID, ContainerName: s.name, Volume: s.volume, MountID: s.mountID,
		Mount: s.dir, Since: s.since,
	}
	for i, e := range s.entries {
		ts := api.TaskSecret{Name: e.Source, Target: e.Target, Pinned: e.Version != 0}
		if i < len(s.versions) {
			ts.Version = s.versions[i]
		}
		if i < len(s.ids) {
			ts.ID = s.ids[i]
		}
		out.Secrets = append(out.Secrets, ts)
	}
	return out
}
