package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"

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

// Rotate pushes the current version of sec into every mount that follows
// it (entries without a pin), then runs each container's on-update action.
// It returns once every mount holds the new files; restarts it asks for run
// in the background.
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
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		count int
		next  = make(chan *task)
	)
	for range min(rotateWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				s, changed, err := c.refresh(t)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("container %s: %w", s.label(), err))
				} else if changed {
					count++
				}
				mu.Unlock()
				if err != nil {
					c.cfg.Metrics.Error("rotate", err)
				}
				if err == nil && changed {
					c.cfg.Audit.Log(audit.Event{Event: audit.ContainerRotate, Secret: sec.Name, SecretID: sec.ID, Version: sec.Current,
						Container: s.name, ContainerID: s.containerID, Mount: s.dir})
					c.afterUpdate(ctx, s, sec)
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
	return count, errors.Join(errs...)
}

// label names a task's container, or says which volume it mounts while
// the container is not known yet.
func (s snapshot) label() string {
	if s.name != "" {
		return s.name
	}
	if s.containerID != "" {
		return shortID(s.containerID)
	}
	return "(starting, volume " + s.volume + ")"
}

// refresh rewrites a task's mount with the versions its entries resolve to
// now, if any differs from what is mounted. The task's lock serialises it
// with Mount, Unmount and other rotations, so an older set never lands
// last. It returns the task as it was written.
func (c *Controller) refresh(t *task) (snapshot, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c.mu.Lock()
	s := t.snap()
	live := c.tasks[t.mountID] == t
	c.mu.Unlock()
	if s.state != mounted || !live {
		return s, false, nil // Mount failed or the container stopped meanwhile
	}
	files, versions, ids, err := c.files(s.entries)
	defer wipeFiles(files)
	if err != nil {
		return s, false, err
	}
	if s.versions != nil && slices.Equal(versions, s.versions) && slices.Equal(ids, s.ids) {
		return s, false, nil
	}
	start := time.Now()
	if err := tmpfs.Update(s.dir, files); err != nil {
		return s, false, err
	}
	c.mu.Lock()
	t.versions, t.ids = versions, ids
	s = t.snap()
	c.mu.Unlock()
	c.cfg.Log.Info("secrets updated in place", "container", s.name, "mount", s.dir, "duration", time.Since(start))
	return s, true, nil
}

// afterUpdate runs the container's secretd.on-update action, unless the
// action comes from the container's image only: an image may not choose
// to be restarted or signalled.
func (c *Controller) afterUpdate(ctx context.Context, s snapshot, sec store.Secret) {
	if c.cfg.Actions == nil || s.containerID == "" || s.onUpdate.Action == "" || s.onUpdate.Action == "none" {
		return
	}
	if c.cfg.Engine != nil && s.image != "" {
		ictx, cancel := context.WithTimeout(ctx, engineTimeout)
		img, err := c.cfg.Engine.ImageInspect(ictx, s.image)
		cancel()
		if err != nil {
			c.cfg.Log.Warn("on-update action skipped: the image's labels could not be read", "container", s.name, "err", err)
			return
		}
		if img.Config != nil {
			if v := img.Config.Labels[LabelOnUpdate]; v != "" {
				if fromImage, err := ParseOnUpdate(v); err == nil && fromImage == s.onUpdate {
					c.cfg.Log.Warn("on-update action skipped: it comes from the image's labels; set it on the container with --label "+LabelOnUpdate+"=...", "container", s.name)
					return
				}
			}
		}
	}
	switch s.onUpdate.Action {
	case "signal":
		ktx, cancel := context.WithTimeout(ctx, engineTimeout)
		defer cancel()
		if err := c.cfg.Actions.ContainerKill(ktx, s.containerID, s.onUpdate.Signal); err != nil {
			c.cfg.Log.Warn("on-update signal failed", "container", s.name, "signal", s.onUpdate.Signal, "err", err)
			return
		}
		c.cfg.Log.Info("on-update signal sent", "container", s.name, "secret", sec.Name, "version", sec.Current, "signal", s.onUpdate.Signal)
	case "restart":
		id, name := s.containerID, s.name
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
