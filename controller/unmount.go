package controller

import (
	"errors"
	"fmt"

	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/tmpfs"
)

// Unmount wipes the tmpfs of one container stop and forgets the task. The
// mount is found by its mount ID wherever it lives: a task's directory, or,
// for a mount this run of the daemon has not adopted yet, the directory
// its record names (a spare's, for a mount that filled one).
func (c *Controller) Unmount(volume, mountID string) error {
	if !mountIDRE.MatchString(mountID) {
		return fmt.Errorf("invalid mount ID %q", mountID)
	}
	if t := c.tasks.get(mountID); t != nil {
		// Waits for a Mount still building it, or a rotation writing it.
		var dir string
		err := t.wipe(func(v taskView) error {
			dir = v.dir
			if v.name == "" {
				// Its container was never learned: the trail gets the
				// mount now, anonymous.
				c.auditMount(v)
			}
			return c.wipe(v.dir, v.name)
		})
		if !errors.Is(err, errNotLive) {
			if err != nil {
				return err
			}
			c.tasks.remove(t)
			return c.removeRecord(dirBase(dir))
		}
		// The Mount failed and cleaned up; look at the disk as below.
	}
	dir := c.recordedDir(mountID)
	if err := c.wipe(dir, ""); err != nil {
		return err
	}
	return c.removeRecord(dirBase(dir))
}

// recordedDir returns the directory of the mount with this ID from the
// records on disk, or the directory named for the ID when none names it.
func (c *Controller) recordedDir(mountID string) string {
	if r, err := c.loadRecord(mountID); err == nil && r.MountID == mountID {
		return c.dir(mountID)
	}
	for _, name := range c.records() {
		if r, err := c.loadRecord(name); err == nil && r.MountID == mountID {
			return c.dir(name)
		}
	}
	return c.dir(mountID)
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
