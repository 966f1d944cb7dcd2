package controller

import (
	"fmt"

	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/tmpfs"
)

// Unmount wipes the tmpfs of one container stop and forgets the task. The
// mount is found by its mount ID wherever it lives: a task's directory, or,
// for a mount this run of the daemon has not adopted yet, the directory
// its record names (a spare's, for a mount that filled one). A mount ID
// that belongs to another volume is refused and nothing is wiped: an
// Unmount names both, and a mix-up must not stop another container's
// secrets.
func (c *Controller) Unmount(volume, mountID string) error {
	if !mountIDRE.MatchString(mountID) {
		return fmt.Errorf("invalid mount ID %q", mountID)
	}
	c.mu.Lock()
	t := c.tasks[mountID]
	if t != nil && t.volume != volume {
		other := t.volume
		c.mu.Unlock()
		return fmt.Errorf("mount ID %s belongs to volume %q, not %q: nothing was unmounted", mountID, other, volume)
	}
	c.mu.Unlock()
	if t != nil {
		// Waits for a Mount still building it, or a rotation writing it.
		t.mu.Lock()
		defer t.mu.Unlock()
		c.mu.Lock()
		live := c.tasks[mountID] == t
		if live {
			t.state = unmounting
		}
		s := t.snap()
		c.mu.Unlock()
		if live {
			if s.name == "" {
				// Its container was never learned: the trail gets the
				// mount now, anonymous.
				c.auditMount(s)
			}
			if err := c.wipe(s.dir, s.name); err != nil {
				return err
			}
			c.mu.Lock()
			if c.tasks[mountID] == t {
				delete(c.tasks, mountID)
			}
			c.mu.Unlock()
			return c.removeRecord(dirBase(s.dir))
		}
		// The Mount failed and cleaned up; look at the disk as below.
	}
	dir, owner := c.recordedDir(mountID)
	if owner != "" && owner != volume {
		return fmt.Errorf("mount ID %s belongs to volume %q, not %q: nothing was unmounted", mountID, owner, volume)
	}
	if err := c.wipe(dir, ""); err != nil {
		return err
	}
	return c.removeRecord(dirBase(dir))
}

// recordedDir returns the directory of the mount with this ID from the
// records on disk, and the volume the record names; or the directory named
// for the ID and no volume when no record names it.
func (c *Controller) recordedDir(mountID string) (dir, volume string) {
	if r, err := c.loadRecord(mountID); err == nil && r.MountID == mountID {
		return c.dir(mountID), r.Volume
	}
	for _, name := range c.records() {
		if r, err := c.loadRecord(name); err == nil && r.MountID == mountID {
			return c.dir(name), r.Volume
		}
	}
	return c.dir(mountID), ""
}

func (c *Controller) wipe(dir, container string) error {
	res, err := tmpfs.Wipe(dir)
	if err != nil {
		c.cfg.Metrics.Error("unmount", err)
		c.cfg.Log.Error("wipe failed", "container", container, "mount", dir, "err", err)
		return fmt.Errorf("wipe secrets at %s: %w", dir, err)
	}
	if res.Lazy {
		c.cfg.Log.Warn("mount was busy: detached lazily after zeroing", "container", container, "mount", dir)
	}
	c.cfg.Log.Info("secrets wiped", "container", container, "mount", dir)
	c.cfg.Audit.Log(audit.Event{Event: audit.ContainerWipe, Container: container, Mount: dir})
	return nil
}
