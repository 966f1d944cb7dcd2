package controller

import "sync"

// taskKey is what a task is found by: the volume and the mount ID an
// engine names in Mount and Unmount. Docker's mount IDs are unique by
// themselves; Podman sends one fixed ID for every volume (see
// PodmanMountID), so the volume is part of the key.
type taskKey struct{ volume, mountID string }

// taskTable is the task table: every task by its volume and mount ID. Its
// lock guards the map only, never a task: a task guards its own fields.
type taskTable struct {
	mu sync.Mutex
	m  map[taskKey]*task
}

func newTaskTable() *taskTable { return &taskTable{m: map[taskKey]*task{}} }

func (t *task) key() taskKey { return taskKey{t.volume, t.mountID} }

// claim puts t in the table under its key, unless a task holds it.
func (tt *taskTable) claim(t *task) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if _, dup := tt.m[t.key()]; dup {
		return false
	}
	tt.m[t.key()] = t
	return true
}

// get returns the task of a volume's mount ID, or nil.
func (tt *taskTable) get(volume, mountID string) *task {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.m[taskKey{volume, mountID}]
}

// withMountID returns a task of the mount ID on any volume, or nil.
func (tt *taskTable) withMountID(mountID string) *task {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	for k, t := range tt.m {
		if k.mountID == mountID {
			return t
		}
	}
	return nil
}

// remove takes t out of the table, unless another task holds its key by
// now.
func (tt *taskTable) remove(t *task) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.m[t.key()] == t {
		delete(tt.m, t.key())
	}
}

// all returns every task, in no order.
func (tt *taskTable) all() []*task {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	out := make([]*task, 0, len(tt.m))
	for _, t := range tt.m {
		out = append(out, t)
	}
	return out
}

// views returns a view of every task, in no order.
func (tt *taskTable) views() []taskView {
	ts := tt.all()
	out := make([]taskView, len(ts))
	for i, t := range ts {
		out[i] = t.view()
	}
	return out
}

// len counts the tasks.
func (tt *taskTable) len() int {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return len(tt.m)
}
