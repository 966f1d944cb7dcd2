package controller

import (
	"github.com/secretd/secretd/declaration"
)

// A Mount of a volume that carries its own declaration does not ask the
// engine which container it is for (see resolve). The engine says so right
// after: once the driver's Mount returns, dockerd emits a volume "mount"
// event naming the container, and then the container's "start" event with
// its name and labels. These two steps give such a task its container; a
// resync does both for any task whose events were missed.

// attribute handles a volume mount event of this driver: the oldest task
// of the volume that no container claims yet is the one this mount made.
// A task already attributed to the container (the Mount asked the engine)
// only takes the event as its confirmation.
func (c *Controller) attribute(volume, containerID string) {
	if containerID == "" {
		return
	}
	c.mu.Lock()
	var t *task
	for _, x := range c.tasks {
		if x.volume != volume || x.confirmed || !x.ready {
			continue
		}
		if x.containerID == containerID {
			x.confirmed = true
			c.mu.Unlock()
			return
		}
		if x.containerID == "" && (t == nil || x.since.Before(t.since)) {
			t = x
		}
	}
	if t == nil {
		c.mu.Unlock()
		return
	}
	t.containerID, t.confirmed = containerID, true
	c.mu.Unlock()
	c.claimed(t)
}

// claim gives a task without a container this one; false if it has one.
func (c *Controller) claim(t *task, containerID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.containerID != "" || !t.ready {
		return false
	}
	t.containerID, t.confirmed = containerID, true
	return true
}

// claimed finishes a task that just learned its container: the record
// names it, so a resync after a crash finds it, and a live grant or revoke
// made for that container while the Mount ran reaches the mount now.
func (c *Controller) claimed(t *task) {
	if err := c.saveRecord(t); err != nil {
		c.cfg.Log.Warn("task record not updated", "mount", t.dir, "err", err)
	}
	c.mu.Lock()
	id := t.containerID
	c.mu.Unlock()
	ov := c.overrides.get(id)
	if len(ov.Add) == 0 && len(ov.Remove) == 0 {
		return
	}
	decl := ""
	if c.cfg.Volumes != nil {
		decl = c.cfg.Volumes.Declaration(t.volume)
	}
	entries, err := c.parse(decl, ov)
	if err == nil {
		err = c.setEntries(t, entries)
	}
	if err != nil {
		c.cfg.Log.Error("live grant or revoke not applied to a new mount", "mount", t.dir, "err", err)
	}
}

// setEntries changes what a running mount holds and rewrites it.
func (c *Controller) setEntries(t *task, entries []declaration.Entry) error {
	t.mu.Lock()
	c.mu.Lock()
	t.entries, t.stale = entries, true
	c.mu.Unlock()
	t.mu.Unlock()
	_, err := c.refresh(t)
	return err
}

// parse is a declaration with a container's live grants and revokes.
func (c *Controller) parse(decl string, ov override) ([]declaration.Entry, error) {
	entries, err := declaration.Parse(decl)
	if err != nil {
		return nil, err
	}
	return ov.apply(entries)
}

// identify gives the container's name and on-update label to its tasks
// that lack them, from a start event or a resync, and writes their mount
// to the audit trail now that it can name the container.
func (c *Controller) identify(o owner) {
	onUpdate, err := ParseOnUpdate(o.Labels[LabelOnUpdate])
	if err != nil {
		c.cfg.Log.Warn("on-update label ignored", "container", o.name(), "err", err)
	}
	var named []*task
	c.mu.Lock()
	for _, t := range c.tasks {
		if t.containerID == o.ID && t.name == "" {
			t.name, t.onUpdate = o.name(), onUpdate
			named = append(named, t)
		}
	}
	c.mu.Unlock()
	for _, t := range named {
		c.auditMount(t)
	}
}
