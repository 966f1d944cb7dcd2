package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/declaration"
)

// task is one mount of secrets into one container start.
type task struct {
	mountID     string
	volume      string
	dir         string
	containerID string
	name        string
	since       time.Time
	entries     []declaration.Entry
	// versions holds the version mounted for each entry, by index.
	versions []int
	ids      []string
	// ready is false while Mount is still building the tmpfs: the claim is
	// taken first so `secret rm` cannot slip in between.
	ready bool
	// stale marks a mount whose content may not match entries (adopted
	// after a restart, or entries changed live): the next refresh rewrites it.
	stale    bool
	onUpdate OnUpdate
	// confirmed is set once the engine's volume mount event for this
	// mount has been matched to it; audited once the trail has it.
	confirmed, audited bool

	// mu serialises changes of the mount's content (Mount, rotations,
	// live grants), so an older file set never lands after a newer one.
	mu sync.Mutex
}

func (t *task) apiTask() api.Task {
	out := api.Task{
		ContainerID: t.containerID, ContainerName: t.name, Volume: t.volume, MountID: t.mountID,
		Mount: t.dir, Since: t.since,
	}
	for i, e := range t.entries {
		ts := api.TaskSecret{Name: e.Source, Target: e.Target, Pinned: e.Version != 0}
		if i < len(t.versions) {
			ts.Version = t.versions[i]
		}
		if i < len(t.ids) {
			ts.ID = t.ids[i]
		}
		out.Secrets = append(out.Secrets, ts)
	}
	return out
}

func (t *task) uses(name string) bool {
	return slices.ContainsFunc(t.entries, func(e declaration.Entry) bool { return e.Source == name })
}
