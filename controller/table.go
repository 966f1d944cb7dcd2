package controller

import "sync"

// taskTable is the task table: every task by its mount ID. Its lock
// guards the map only, never a task: a task guards its own fields.
type taskTable struct {
	mu sync.Mutex
	m  map[string]*task
}

func newTaskTable() *taskTable { return &taskTable{m: map[string]*task{}} }

// claim puts t in the table under its mount ID, unless a task holds it.
func (tt *taskTable) claim(t *task) bool {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if _, dup := tt.m[t.mountID]; dup {
		return false
	}
	tt.m[t.mountID] = t
	return true
}

// get returns the task of a mount ID, or nil.
func (tt *taskTable) get(mountID string) *task {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	return tt.m[mountID]
}

// remove takes t out of the table, unless another task holds its mount
// ID by now.
func (tt *taskTable) remove(t *task) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	if tt.m[t.mountID] == t {
		delete(tt.m, t.mountID)
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
