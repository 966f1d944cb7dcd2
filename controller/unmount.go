package controller

import (
	"errors"
	"fmt"
)

// Unmount wipes the tmpfs of one container stop (for Podman, of the last
// container of the volume to stop) and forgets the task. The mount is
// found by its volume and mount ID wherever it lives: a task's directory,
// or, for a mount this run of the daemon has not adopted yet, the
// directory its record names (a spare's, for a mount that filled one). A
// Docker mount ID that belongs to another volume is refused and nothing
// is wiped: an Unmount names both, and a mix-up must not stop another
// container's secrets.
func (c *Controller) Unmount(volume, mountID string) error {
	if !mountIDRE.MatchString(mountID) {
		return fmt.Errorf("invalid mount ID %q", mountID)
	}
	t := c.tasks.get(volume, mountID)
	if t == nil && !sharedMountID(mountID) {
		if other := c.tasks.withMountID(mountID); other != nil {
			// volume is fixed when the task is made: no lock needed to read it.
			return fmt.Errorf("mount ID %s belongs to volume %q, not %q: nothing was unmounted", mountID, other.volume, volume)
		}
	}
	if t != nil {
		// Waits for a Mount still building it, or a rotation writing it.
		var dir string
		err := t.wipe(func(v taskView) error {
			dir = v.dir
			if v.name == "" && !v.joined {
				// Its container was never learned: the trail gets the
				// mount now, anonymous.
				auditMount(c.cfg.Audit, v)
			}
			return c.root.wipe(v.dir, v)
		})
		if !errors.Is(err, errNotLive) {
			if err != nil {
				return err
			}
			c.tasks.remove(t)
			return c.root.removeRecord(dirBase(dir))
		}
		// The Mount failed and cleaned up; look at the disk as below.
	}
	dir, owner := c.root.recordedDir(volume, mountID)
	if owner != "" && owner != volume {
		return fmt.Errorf("mount ID %s belongs to volume %q, not %q: nothing was unmounted", mountID, owner, volume)
	}
	if err := c.root.wipe(dir, taskView{volume: volume}); err != nil {
		return err
	}
	return c.root.removeRecord(dirBase(dir))
}
