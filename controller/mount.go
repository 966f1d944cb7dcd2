package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/secretd/secretd/internal/audit"
)

// Mount builds the tmpfs for one container start and returns its path. It
// is a function of the volume's record: only a volume not bound yet asks
// the engine, once in its life. It fails closed: any problem is an error,
// and nothing stays mounted.
func (c *Controller) Mount(ctx context.Context, volume, mountID string) (string, error) {
	start := time.Now()
	dir, err := c.mount(ctx, volume, mountID)
	if err != nil {
		// Every refusal, whatever step made it: dockerd shows the user
		// the error, but only the log tells the operator.
		c.cfg.Log.Warn("mount refused", "volume", volume, "mount_id", mountID, "err", err)
		c.cfg.Metrics.Error("mount", err)
		c.cfg.Audit.Deny(audit.ContainerMount, nil, audit.Event{Volume: volume}, err)
		return "", err
	}
	c.cfg.Metrics.ObserveMount(time.Since(start))
	return dir, nil
}

// phases splits a Mount's time for its log line, so a slow Mount tells
// whether the engine, the disk, the store or the kernel held it up.
type phases struct {
	declared                        string // BoundByOption or BoundByLabel
	engine                          bool   // whether the Mount asked the engine
	spare                           bool   // whether the tmpfs was a spare
	staged                          bool   // whether the spare was filled at the create (see staging)
	resolve, record, decrypt, tmpfs time.Duration
}

// mount is the Mount algorithm, seven steps from top to bottom; a staged
// fill (see staging) has done steps 6 and 7 ahead, and step 6 checks that
// nothing changed since. A failed step returns at once, and one deferred
// undo takes back what the steps before it did: nothing stays mounted,
// claimed or recorded.
func (c *Controller) mount(ctx context.Context, volume, mountID string) (dir string, err error) {
	start := time.Now()
	var ph phases
	// 1. validate: the mount ID becomes a directory name, and comes from
	// the engine secretd follows; a Podman Mount needs no engine lookup.
	if !mountIDRE.MatchString(mountID) {
		return "", fmt.Errorf("invalid mount ID %q", mountID)
	}
	if err := c.engine.fits(volume, mountID, c.cfg.EngineHost); err != nil {
		return "", err
	}
	if sharedMountID(mountID) {
		if err := c.binding.podmanMountable(volume); err != nil {
			return "", err
		}
	}
	// 2. bind: the volume's declaration is fixed once; only a volume not
	// bound yet asks the engine, once in its life.
	v, owner, err := c.binding.bindVolume(ctx, volume, &ph)
	if err != nil {
		return "", err
	}
	// 3. claim: the task enters the table under its volume and mount ID,
	// busy until step 7, in the volume's staged fill, a spare or a
	// directory named for the mount (see claimMount). From here `secret
	// rm` sees the mount, and a rotation, a live grant or an Unmount that
	// finds it waits for the result. A second Mount of a key the table holds is refused: Docker
	// never repeats a mount ID, and Podman mounts a volume once until its
	// Unmount (see PodmanMountID).
	t, staged, err := c.root.claimMount(mountID, volume, owner, &ph)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			err = c.root.undoMount(t, ph.spare, err)
		}
	}()
	// 4. entries: read after the claim, so a live grant saved before it is
	// seen here, and one saved after finds the claim and rewrites it.
	entries, err := c.vols.mountEntries(volume)
	if err != nil {
		return "", err
	}
	t.declare(entries)
	ph.resolve = time.Since(start)
	// 5. record: which mount, volume and container, written before
	// anything is mounted, so a resync after a crash finds the owner.
	step := time.Now()
	if err = c.root.saveRecord(t.view()); err != nil {
		return "", err
	}
	ph.record = time.Since(step)
	// 6. reveal: decrypt the declared versions, or fetch them from their
	// sources; each secret once, however many targets it has.
	// Templates are rendered here, from the volume's scope. A staged fill
	// whose entries and secrets did not change since is the mount already.
	step = time.Now()
	var got content
	how := fillNew
	if ph.spare {
		how = fillSpare
	}
	if staged != nil {
		how = fillStaged
	}
	if how == fillStaged && c.contents.unchanged(staged, entries) {
		got, how = staged.content, keepStaged
	} else {
		in, err := c.binding.mountInput(ctx, volume, v, entries, owner)
		if err != nil {
			return "", err
		}
		got, err = c.contents.files(ctx, entries, in)
		defer wipeFiles(got.files)
		if err != nil {
			return "", err
		}
	}
	ph.decrypt = time.Since(step)
	// 7. fill: mount the files (into the spare, or a new tmpfs), read-only,
	// or rewrite the staged fill; the task is mounted.
	step = time.Now()
	if err = t.fill(got, how); err != nil {
		return "", err
	}
	ph.tmpfs = time.Since(step)
	c.mounted(t.view(), ph, start)
	return t.dir, nil
}

// mounted reports a Mount that succeeded: to the audit trail when its
// container is known (named now, so never again: see identify), the
// latency ring and the log.
func (c *Controller) mounted(v taskView, ph phases, start time.Time) {
	for _, w := range v.containers() {
		if w.name != "" {
			auditMount(c.cfg.Audit, w)
		}
	}
	d := time.Since(start)
	c.mountTimes.add(d)
	c.cfg.Log.Info("secrets mounted", "volume", v.volume, "mount", v.dir, "secrets", len(v.entries), "duration", d,
		"declared", ph.declared, "engine_lookup", ph.engine, "spare", ph.spare, "staged", ph.staged, "resolve", ph.resolve,
		"record", ph.record, "decrypt", ph.decrypt, "tmpfs", ph.tmpfs)
}
