package controller

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// resyncInterval bounds how long a leftover mount can outlive its
// container when every other signal was lost.
const resyncInterval = 5 * time.Minute

// Run follows the engine's event stream until ctx ends. Whenever the
// stream breaks (engine restart, network) it reconnects with backoff and
// resyncs, because events sent while it was away are gone.
func (c *Controller) Run(ctx context.Context) {
	// Lookups of created containers end, and the bindings they learned
	// are saved, before the daemon exits.
	defer c.binding.saveLearned()
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.follow(ctx)
		if ctx.Err() != nil {
			return
		}
		c.engine.set(err)
		c.cfg.Metrics.Error("engine", err)
		c.cfg.Log.Warn("engine event stream broke: reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
		// The engine answers a list again: back off from the start.
		if _, err := c.cfg.Engine.ContainerList(ctx, listNone); err == nil {
			backoff = 100 * time.Millisecond
		}
	}
}

func (b *binding) saveLearned() {
	b.learning.Wait()
	b.vols.flush()
}

// follow subscribes first and resyncs second, so nothing that happens
// during the resync is missed.
func (c *Controller) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Types and actions filter independently: volume destroys and the
	// like come through too, and handle tells them apart. Podman filters
	// by its own names, "died" for die and "remove" for destroy (and
	// sends die as "die"); Docker matches neither.
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("type", string(events.VolumeEventType)),
		filters.Arg("event", string(events.ActionDestroy)),
		filters.Arg("event", string(actionRemove)),
		filters.Arg("event", string(events.ActionRename)),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("event", podmanDied),
		filters.Arg("event", string(events.ActionStart)),
		filters.Arg("event", string(events.ActionMount)),
		filters.Arg("event", string(events.ActionCreate)),
	)
	msgs, errs := c.cfg.Engine.Events(ctx, events.ListOptions{Filters: f})
	if err := c.Resync(ctx); err != nil {
		c.cfg.Log.Warn("resync incomplete", "err", err)
		// A failed list means the engine is gone: let the stream tell.
	} else {
		c.engine.set(nil)
	}
	// A periodic resync is the safety net for anything the events and
	// Unmounts missed; it costs one container list.
	periodic := time.NewTicker(resyncInterval)
	defer periodic.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case m := <-msgs:
			c.handle(ctx, m)
			if m.TimeNano != 0 {
				c.eventLag.add(time.Since(time.Unix(0, m.TimeNano)))
			}
		case <-c.resyncReq:
			if err := c.Resync(ctx); err != nil {
				c.cfg.Log.Warn("resync incomplete", "err", err)
			}
		case <-periodic.C:
			if err := c.Resync(ctx); err != nil {
				c.cfg.Log.Warn("resync incomplete", "err", err)
			}
		}
	}
}

// Podman's names for container actions that Docker calls otherwise:
// Podman's compat API sends destroy as "remove", and filters die by
// "died".
const (
	actionRemove = events.Action("remove")
	podmanDied   = "died"
)

// handle reads only an event's Type, Action and Actor (and its time, in
// follow): API 1.52 (Engine 29) no longer sends the legacy status, id and
// from, and Engine 20.10 never sent them for volume events.
func (c *Controller) handle(ctx context.Context, m events.Message) {
	c.cfg.Metrics.Event(string(m.Action))
	id := m.Actor.ID
	if m.Type == events.VolumeEventType {
		if m.Action == events.ActionMount && (c.binding.ours(m.Actor.Attributes["driver"]) || c.vols.has(id)) {
			c.attribute(id, m.Actor.Attributes["container"], m.Actor.Attributes["destination"])
		}
		return
	}
	switch m.Action {
	case events.ActionCreate:
		c.binding.created(ctx, id, m.Actor.Attributes)
		if c.binding.declaresSourced(m.Actor.Attributes[LabelSecrets]) {
			c.binding.learnHostnames(ctx, id)
		}
	case events.ActionStart:
		// Container events carry the labels and the name as attributes.
		c.identify(identity{ID: id, Name: m.Actor.Attributes["name"], Image: m.Actor.Attributes["image"], Labels: m.Actor.Attributes})
		c.joinShared(ctx, id)
	case events.ActionRename:
		for _, t := range c.tasks.all() {
			t.rename(id, m.Actor.Attributes["name"])
		}
	case events.ActionDie, podmanDied:
		c.tasks.leave(id)
	case events.ActionDestroy, actionRemove:
		c.tasks.leave(id)
		// dockerd unmounts before it destroys; a task still here lost its
		// Unmount (driver timeout, crash) and must not outlive the
		// container. Live grants and revokes belong to the volumes and go
		// with them, not with a container.
		c.binding.hostnames.drop(id)
		c.binding.envs.drop(id)
		var stale []taskView
		for _, v := range c.tasks.views() {
			if v.containerID == id && v.live() {
				stale = append(stale, v)
			}
		}
		for _, t := range stale {
			if err := c.Unmount(t.volume, t.mountID); err != nil {
				c.cfg.Log.Error("wipe after destroy failed", "container", t.name, "mount", t.dir, "err", err)
			}
		}
	}
}
