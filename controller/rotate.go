package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/audit"
	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/store"
	"github.com/secretd/secretd/tmpfs"
)

// Actions are the engine calls a rotation's on-update label may ask for.
type Actions interface {
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerRestart(ctx context.Context, id string, opts container.StopOptions) error
}

// rotateWorkers bounds how many mounts are rewritten at once: enough to
// hide one slow container, few enough for a 2-core host.
const rotateWorkers = 8

// RotationError lists the containers a rotation did not reach: each keeps
// the files it had. Its message names them all, for the user of `secret
// update`.
type RotationError struct {
	// Secret and Version are what was being pushed.
	Secret  string
	Version int
	// Failed is sorted by container name.
	Failed []RotationFailure
}

// RotationFailure is one container a rotation did not reach, and why.
type RotationFailure struct {
	Container   string
	ContainerID string
	Mount       string
	Err         error
}

// Error names every container and its reason on one line.
func (e *RotationError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = fmt.Sprintf("%s (%v)", f.Container, f.Err)
	}
	n := len(e.Failed)
	them := "it still reads"
	if n > 1 {
		them = "they still read"
	}
	return fmt.Sprintf("version %d of secret '%s' is stored but did not reach %d container%s, %s the previous version: %s; fix the cause and update the secret again, or restart %s",
		e.Version, e.Secret, n, pluralS(n), them, strings.Join(parts, ", "), pronoun(n))
}

// Unwrap gives the per-container errors, so errors.Is sees their kinds.
func (e *RotationError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f.Err
	}
	return out
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// Rotate pushes the current version of sec into every mount that follows
// it (entries without a pin), then runs each container's on-update action.
// It returns once every mount holds the new files; restarts it asks for run
// in the background. A container it could not update is logged, audited,
// counted, and named in the *RotationError it returns.
func (c *Controller) Rotate(ctx context.Context, sec store.Secret) (int, error) {
	c.mu.Lock()
	var todo []*task
	for _, t := range c.tasks {
		if slices.ContainsFunc(t.entries, func(e declaration.Entry) bool { return e.Source == sec.Name && e.Version == 0 }) {
			todo = append(todo, t)
		}
	}
	c.mu.Unlock()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []RotationFailure
		count  int
		next   = make(chan *task)
	)
	for range min(rotateWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				changed, err := c.refresh(t)
				if err != nil {
					c.mu.Lock()
					f := RotationFailure{Container: t.name, ContainerID: t.containerID, Mount: t.dir, Err: err}
					c.mu.Unlock()
					if f.Container == "" {
						f.Container = "mount " + t.mountID
					}
					c.rotationFailed(sec, f)
					mu.Lock()
					failed = append(failed, f)
					mu.Unlock()
					continue
				}
				if changed {
					mu.Lock()
					count++
					mu.Unlock()
				}
				if err == nil && changed {
					c.cfg.Audit.Log(audit.Event{Event: audit.ContainerRotate, Secret: sec.Name, SecretID: sec.ID, Version: sec.Current,
						Container: t.name, ContainerID: t.containerID, Mount: t.dir})
					c.afterUpdate(ctx, t, sec)
				}
			}
		}()
	}
	for _, t := range todo {
		next <- t
	}
	close(next)
	wg.Wait()
	c.rotations.Add(uint64(count))
	c.cfg.Metrics.Rotated(count)
	if len(failed) == 0 {
		return count, nil
	}
	slices.SortFunc(failed, func(a, b RotationFailure) int { return strings.Compare(a.Container, b.Container) })
	return count, &RotationError{Secret: sec.Name, Version: sec.Current, Failed: failed}
}

// rotationFailed records one container a rotation did not reach: the log,
// the audit trail and the metrics each hear of it.
func (c *Controller) rotationFailed(sec store.Secret, f RotationFailure) {
	c.cfg.Log.Error("rotation did not reach a container: it keeps the previous version",
		"secret", sec.Name, "version", sec.Current, "container", f.Container, "mount", f.Mount, "err", f.Err)
	c.cfg.Metrics.Error("rotate", f.Err)
	c.cfg.Metrics.RotationFailed(1)
	c.cfg.Audit.Log(audit.Event{Event: audit.ContainerRotateFailed, Secret: sec.Name, SecretID: sec.ID, Version: sec.Current,
		Container: f.Container, ContainerID: f.ContainerID, Mount: f.Mount, Reason: f.Err.Error()})
}

// refresh rewrites a task's mount with the versions its entries resolve to
// now, if any differs from what is mounted. The task's lock serialises it
// with Mount and other rotations, so an older set never lands last.
func (c *Controller) refresh(t *task) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.mu.Lock()
	ready, live := t.ready, c.tasks[t.mountID] == t
	c.mu.Unlock()
	if !ready || !live {
		return false, nil // Mount failed or the container stopped meanwhile
	}
	files, versions, ids, err := c.files(t.entries)
	defer wipeFiles(files)
	if err != nil {
		return false, err
	}
	if slices.Equal(versions, t.versions) && slices.Equal(ids, t.ids) && !t.stale {
		return false, nil
	}
	start := time.Now()
	if err := tmpfs.Update(t.dir, files); err != nil {
		return false, err
	}
	c.mu.Lock()
	t.versions, t.ids, t.stale = versions, ids, false
	c.mu.Unlock()
	c.cfg.Log.Info("secrets updated in place", "container", t.name, "mount", t.dir, "duration", time.Since(start))
	return true, nil
}

// afterUpdate runs the container's secretd.on-update action.
func (c *Controller) afterUpdate(ctx context.Context, t *task, sec store.Secret) {
	if c.cfg.Actions == nil || t.containerID == "" {
		return
	}
	switch t.onUpdate.Action {
	case "signal":
		if err := c.cfg.Actions.ContainerKill(ctx, t.containerID, t.onUpdate.Signal); err != nil {
			c.cfg.Log.Warn("on-update signal failed", "container", t.name, "signal", t.onUpdate.Signal, "err", err)
			return
		}
		c.cfg.Log.Info("on-update signal sent", "container", t.name, "secret", sec.Name, "version", sec.Current, "signal", t.onUpdate.Signal)
	case "restart":
		id, name := t.containerID, t.name
		go func() {
			// Not the request's context: the restart outlives the update call.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := c.cfg.Actions.ContainerRestart(rctx, id, container.StopOptions{}); err != nil {
				c.cfg.Log.Warn("on-update restart failed", "container", name, "err", err)
				return
			}
			c.cfg.Log.Info("on-update restart done", "container", name, "secret", sec.Name)
		}()
	}
}

// UpdateContainer grants (add) and revokes (rm, by secret name) secrets of
// a running or stopped container, live: running mounts are rewritten at
// once, and the change is kept for the container's later starts until it
// is removed.
func (c *Controller) UpdateContainer(ctx context.Context, ref string, add, rm []string) (api.Task, error) {
	if len(add) == 0 && len(rm) == 0 {
		return api.Task{}, store.Errorf(store.ErrInvalid, "nothing to change: give --secret-add or --secret-rm")
	}
	s, err := c.findContainer(ctx, ref)
	if err != nil {
		return api.Task{}, err
	}
	o := ownerOf(s)
	bases := c.declarations(s)
	if len(bases) == 0 {
		return api.Task{}, store.Errorf(store.ErrInvalid, "container %s has no %s volume: start it with one to manage its secrets", o.name(), c.cfg.DriverName)
	}
	base, err := declaration.Parse(bases[0])
	if err != nil {
		return api.Task{}, err
	}
	cur := c.overrides.get(s.ID)
	effective, err := cur.apply(base)
	if err != nil {
		return api.Task{}, err
	}
	next := override{Add: slices.Clone(cur.Add), Remove: slices.Clone(cur.Remove)}
	for _, name := range rm {
		if !slices.ContainsFunc(effective, func(e declaration.Entry) bool { return e.Source == name }) {
			return api.Task{}, store.Errorf(store.ErrNotFound, "secret '%s' is not granted to container %s", name, o.name())
		}
		next.Add = slices.DeleteFunc(next.Add, func(a string) bool {
			es, _ := declaration.Parse(a)
			return len(es) == 1 && es[0].Source == name
		})
		if slices.ContainsFunc(base, func(e declaration.Entry) bool { return e.Source == name }) && !slices.Contains(next.Remove, name) {
			next.Remove = append(next.Remove, name)
		}
	}
	for _, spec := range add {
		entries, err := declaration.Parse(spec)
		if err != nil {
			return api.Task{}, err
		}
		for _, e := range entries {
			sec, err := c.cfg.Store.Get(e.Source)
			if err == nil && sec.Name != e.Source {
				// Mounts resolve declarations by name only: an ID or ID
				// prefix would be saved here and then never mount.
				err = store.Errorf(store.ErrNotFound, "secret '%s' not found", e.Source)
			}
			if err != nil {
				return api.Task{}, err
			}
			if e.Version != 0 && !sec.HasVersion(e.Version) {
				return api.Task{}, store.Errorf(store.ErrNotFound, "secret '%s' has no version %d", e.Source, e.Version)
			}
			next.Remove = slices.DeleteFunc(next.Remove, func(n string) bool { return n == e.Source })
			next.Add = append(next.Add, e.String())
		}
	}
	entries, err := next.apply(base)
	if err != nil {
		return api.Task{}, err
	}
	if err := c.overrides.set(s.ID, next); err != nil {
		return api.Task{}, fmt.Errorf("save container override: %w", err)
	}
	// Rewrite the running mounts of this container.
	c.mu.Lock()
	var mine []*task
	for _, t := range c.tasks {
		if t.containerID == s.ID {
			mine = append(mine, t)
		}
	}
	c.mu.Unlock()
	var errs []error
	out := api.Task{ContainerID: s.ID, ContainerName: o.name()}
	for _, t := range mine {
		if err := c.setEntries(t, entries); err != nil {
			errs = append(errs, err)
		}
		c.mu.Lock()
		out = t.apiTask()
		c.mu.Unlock()
	}
	if len(mine) == 0 {
		for _, e := range entries {
			out.Secrets = append(out.Secrets, api.TaskSecret{Name: e.Source, Target: e.Target, Version: e.Version, Pinned: e.Version != 0})
		}
	}
	c.cfg.Log.Info("container secrets changed", "container", o.name(), "added", len(add), "removed", len(rm), "running_mounts", len(mine))
	return out, errors.Join(errs...)
}

// findContainer resolves a container name or ID prefix through the engine.
func (c *Controller) findContainer(ctx context.Context, ref string) (container.Summary, error) {
	if c.cfg.Engine == nil {
		return container.Summary{}, errNoEngine
	}
	list, err := c.cfg.Engine.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return container.Summary{}, store.Errorf(store.ErrUnavailable, "the Docker Engine did not answer: %v", err)
	}
	var byPrefix []container.Summary
	for _, s := range list {
		if s.ID == ref || slices.ContainsFunc(s.Names, func(n string) bool { return trimSlash(n) == ref }) {
			return s, nil
		}
		if len(ref) >= 3 && len(s.ID) >= len(ref) && s.ID[:len(ref)] == ref {
			byPrefix = append(byPrefix, s)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
		return container.Summary{}, store.Errorf(store.ErrNotFound, "no such container: %s", ref)
	default:
		return container.Summary{}, store.Errorf(store.ErrInvalid, "container ID prefix %s is ambiguous", ref)
	}
}
