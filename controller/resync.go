package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/mountroot"
	"github.com/secretd/secretd/tmpfs"
)

// Resync makes the task table and the mounts agree with the engine: a mount
// whose container is alive is kept (and adopted after a daemon restart),
// any other mount is wiped. It runs at start and after every break of the
// event stream, because Unmounts sent while secretd was down are lost.
func (c *Controller) Resync(ctx context.Context) (err error) {
	defer func() { c.cfg.Metrics.Error("resync", err) }()
	if c.cfg.Engine == nil {
		return errNoEngine
	}
	start := time.Now()
	list, err := c.cfg.Engine.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("resync: list containers: %w", err)
	}
	// Live containers that mount a volume of this driver, by ID and by
	// volume name.
	byID := map[string]container.Summary{}
	byVolume := map[string][]container.Summary{}
	users := map[string][]container.Summary{} // alive or not
	listed := make(map[string]bool, len(list))
	var learn []string        // containers whose hostname a source needs
	var names map[string]bool // sourcedSecrets, listed once when needed
	for _, s := range list {
		listed[s.ID] = true
		mountsOurs := false
		for _, m := range s.Mounts {
			if !c.ourMount(m) {
				continue
			}
			mountsOurs = true
			users[m.Name] = append(users[m.Name], s)
			if alive(s.State) {
				byID[s.ID] = s
				byVolume[m.Name] = append(byVolume[m.Name], s)
			}
		}
		if decl, declares := s.Labels[LabelSecrets]; declares && mountsOurs && !c.hostnames.known(s.ID) {
			// Created while secretd was away: learned now, for its next
			// start, if a source needs it (as at a create event).
			if names == nil {
				names = c.sourcedSecrets()
			}
			if c.declaresSourcedBy(decl, func(e declaration.Entry) bool { return e.Version == 0 && names[e.Source] }) {
				learn = append(learn, s.ID)
			}
		}
	}
	c.learnHostnames(ctx, learn...)
	c.hostnames.keepOnly(listed) // destroy events lost while away
	c.bindListed(ctx, users)
	c.migrateLegacy(list)
	mounts, err := tmpfs.Mounts(c.cfg.MountRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resync: %w", err)
	}
	// Taken after the list: a mount listed there was either a spare
	// still owned here or already a task's (Mount records a task before
	// it mounts or fills anything).
	// The spares before the tasks: a spare passing to a task is in one of
	// them (see spares).
	spare := c.spares.ownedNames()
	tasks := c.tasks.all()
	byDir := make(map[string]*task, len(tasks))
	snaps := make(map[*task]taskView, len(tasks))
	for _, t := range tasks {
		v := t.view()
		byDir[dirBase(v.dir)] = t
		snaps[t] = v
	}
	var errs []error
	kept, wiped, adopted := 0, 0, 0
	live := map[string]bool{}
	for _, dir := range mounts {
		name := dirBase(dir)
		live[name] = true
		if spare[name] {
			continue
		}
		t := byDir[name]
		if t == nil && !mountroot.MountDir(name, c.hasRecord(name)) {
			c.cfg.Log.Warn("mount under the mount root is not secretd's: left as it is", "dir", dir)
			continue
		}
		rec := &taskRecord{}
		if t != nil {
			s := snaps[t]
			rec = &taskRecord{MountID: s.mountID, Volume: s.volume, ContainerID: s.containerID, Since: s.since}
		} else if r, err := c.loadRecord(name); err == nil {
			rec = r
		}
		owner, owned := findOwner(rec, byID, byVolume)
		switch {
		case owned:
			kept++
			if t == nil {
				c.adopt(dir, rec, owner)
				adopted++
			} else if owner.ID == "" {
				// A live container uses the volume, but which of its users
				// this mount is for, no event said: it stays unnamed.
			} else if s, ok := t.claim(owner.ID); ok {
				// Its volume mount event was missed.
				c.claimed(s)
				c.identify(identityOf(owner))
			}
		case t != nil && snaps[t].state == mounting, !rec.Since.IsZero() && time.Since(rec.Since) < c.cfg.Grace:
			kept++ // a start in progress: dockerd mounts before the container runs
			// If that start never completes (the container failed, or
			// stopped while secretd was down) nobody else will look again.
			c.resyncAfter(c.cfg.Grace - time.Since(rec.Since) + 100*time.Millisecond)
		default:
			who := ""
			if t != nil {
				who = snaps[t].name
			}
			c.cfg.Log.Debug("resync wipes a mount no live container holds", "mount", dir, "record_volume", rec.Volume,
				"record_container", rec.ContainerID, "mount_id", rec.MountID, "in_table", t != nil)
			var err error
			if t != nil {
				// Waits for a rotation writing it; an Unmount may have
				// wiped it meanwhile.
				if err = t.wipe(func(taskView) error { return c.wipe(dir, who) }); err == nil {
					c.tasks.remove(t)
				}
			} else {
				err = c.wipe(dir, "")
			}
			if errors.Is(err, errNotLive) {
				continue
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			delete(live, name)
			errs = append(errs, c.removeRecord(name))
			wiped++
		}
	}
	// Tasks whose tmpfs is gone (wiped by hand, or a failed Unmount that
	// still unmounted) leave the table.
	for _, t := range c.tasks.all() {
		if v := t.view(); v.live() && !live[dirBase(v.dir)] && t.drop() {
			c.tasks.remove(t)
		}
	}
	errs = append(errs, c.removeStrayDirs(live))
	c.engineMu.Lock()
	first := c.resyncs == 0
	c.engineMu.Unlock()
	c.removeTemps(first)
	inUse := c.dirsInUse()
	for _, name := range c.records() {
		if !live[name] && !inUse[name] {
			errs = append(errs, c.removeRecord(name))
		}
	}
	c.engineMu.Lock()
	c.resyncs++
	c.engineMu.Unlock()
	c.cfg.Metrics.Resync()
	c.cfg.Log.Info("resync done", "containers", len(list), "mounts_kept", kept, "mounts_wiped", wiped, "adopted", adopted, "duration", time.Since(start))
	return errors.Join(errs...)
}

// findOwner finds the live container a mount belongs to: the one its
// record names, using the record's volume; or, when the record names no
// container (its mount event was not seen), the volume's only live user.
// A volume with several live users keeps the mount (owned) without an
// owner: it is one of theirs, and guessing which would misname it.
func findOwner(rec *taskRecord, byID map[string]container.Summary, byVolume map[string][]container.Summary) (container.Summary, bool) {
	if rec.Volume == "" {
		return container.Summary{}, false
	}
	if rec.ContainerID != "" {
		s, ok := byID[rec.ContainerID]
		if !ok {
			return container.Summary{}, false
		}
		for _, m := range s.Mounts {
			if m.Name == rec.Volume {
				return s, true
			}
		}
		return container.Summary{}, false
	}
	switch users := byVolume[rec.Volume]; len(users) {
	case 0:
		return container.Summary{}, false
	case 1:
		return users[0], true
	default:
		return container.Summary{}, true
	}
}

func alive(state string) bool {
	switch state {
	case container.StateRunning, container.StatePaused, container.StateRestarting, container.StateCreated:
		return true
	}
	return false
}

// bindListed binds the unbound volumes the list shows in use, by the same
// rule as a Mount's lookup. Volumes recorded before declarations were
// bound (and those whose create event was missed) bind here, so their next
// Mount asks the engine nothing.
func (c *Controller) bindListed(ctx context.Context, users map[string][]container.Summary) {
	for name, us := range users {
		v, ok := c.vols.get(name)
		if ok && v.Bound() {
			continue
		}
		bctx, cancel := context.WithTimeout(ctx, bindTimeout)
		decl, owner, err := c.agreedLabel(bctx, name, us)
		cancel()
		if err != nil {
			c.cfg.Log.Debug("volume not bound at resync", "volume", name, "err", err)
			continue
		}
		if _, err := c.bindLabel(name, decl, owner); err != nil {
			c.cfg.Log.Warn("volume not bound at resync", "volume", name, "err", err)
		}
	}
}

// adopt rebuilds the task of a mount made before a daemon restart, from the
// volume's record; the versions are those the store says now.
func (c *Controller) adopt(dir string, rec *taskRecord, s container.Summary) {
	v, ok := c.vols.get(rec.Volume)
	var entries []declaration.Entry
	var err error
	if !ok || !v.Bound() {
		err = fmt.Errorf("volume %s has no bound declaration", rec.Volume)
	} else {
		// versions stay nil: the mount's content is whatever was current
		// before the restart, and the refresh below rewrites it.
		entries, err = v.Entries()
	}
	t := adoptedTask(rec, dir, identityOf(s), entries)
	if err != nil {
		c.cfg.Log.Warn("adopted mount left as it is", "container", t.name, "mount", dir, "err", err)
	}
	if !c.tasks.claim(t) {
		return
	}
	c.cfg.Log.Info("mount adopted", "container", t.name, "mount", dir)
	if err == nil {
		if _, _, err := c.refresh(t); err != nil {
			c.cfg.Log.Warn("adopted mount not refreshed", "container", t.name, "mount", dir, "err", err)
		}
	}
}

// removeStrayDirs deletes directories under the mount root that are
// secretd's mounts but hold no container's (left by a crash between mkdir
// and mount, or after a lazy detach). A directory that is not secretd's
// own, by its name or a task record beside it, is left alone: the daemon
// checked the mount root at start, and whatever appeared since is someone
// else's.
func (c *Controller) removeStrayDirs(live map[string]bool) error {
	entries, err := os.ReadDir(c.cfg.MountRoot)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	inUse := c.dirsInUse()
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || live[n] || inUse[n] {
			continue
		}
		if !mountroot.MountDir(n, names[n+mountroot.RecordSuffix]) {
			c.cfg.Log.Warn("directory under the mount root is not secretd's: left as it is", "dir", c.dir(n))
			continue
		}
		if _, err := tmpfs.Wipe(c.dir(e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dirsInUse names the mount root's directories that a task or a spare
// holds: one may be between its mkdir and its mount, or its record and
// its mount, and must not be taken for a leftover.
func (c *Controller) dirsInUse() map[string]bool {
	in := c.spares.ownedNames() // before the tasks, as in Resync
	for _, t := range c.tasks.all() {
		in[dirBase(t.dir)] = true
	}
	return in
}

func dirBase(dir string) string {
	for i := len(dir) - 1; i >= 0; i-- {
		if dir[i] == '/' {
			return dir[i+1:]
		}
	}
	return dir
}
