package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/tmpfs"
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
	resolve, record, decrypt, tmpfs time.Duration
}

// mount is the Mount algorithm, seven steps from top to bottom. A failed
// step returns at once, and one deferred undo takes back what the steps
// before it did: nothing stays mounted, claimed or recorded.
func (c *Controller) mount(ctx context.Context, volume, mountID string) (dir string, err error) {
	start := time.Now()
	var ph phases
	// 1. validate: the mount ID becomes a directory name.
	if !mountIDRE.MatchString(mountID) {
		return "", fmt.Errorf("invalid mount ID %q", mountID)
	}
	// 2. bind: the volume's declaration is fixed once; only a volume not
	// bound yet asks the engine, once in its life.
	v, owner, err := c.bindVolume(ctx, volume, &ph)
	if err != nil {
		return "", err
	}
	// 3. claim: the task enters the table, busy until step 7, in a spare
	// or a directory named for the mount ID. From here `secret rm` sees
	// the mount, and a rotation, a live grant or an Unmount that finds it
	// waits for the result.
	t, err := c.claimMount(mountID, volume, owner, &ph)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			err = c.undoMount(t, ph.spare, err)
		}
	}()
	// 4. entries: read after the claim, so a live grant saved before it is
	// seen here, and one saved after finds the claim and rewrites it.
	entries, err := c.volumeEntries(volume)
	if err != nil {
		return "", err
	}
	t.declare(entries)
	ph.resolve = time.Since(start)
	// 5. record: which mount, volume and container, written before
	// anything is mounted, so a resync after a crash finds the owner.
	step := time.Now()
	if err = c.saveRecord(t.view()); err != nil {
		return "", err
	}
	ph.record = time.Since(step)
	// 6. reveal: decrypt the declared versions, or fetch them from their
	// sources; each secret once, however many targets it has.
	step = time.Now()
	got, err := c.files(ctx, entries, c.boundContainer(ctx, owner, v.BoundTo), "")
	defer wipeFiles(got.files)
	ph.decrypt = time.Since(step)
	if err != nil {
		return "", err
	}
	// 7. fill: mount the files (into the spare, or a new tmpfs), read-only;
	// the task is mounted.
	step = time.Now()
	if err = t.fill(got.files, got.versions, got.ids, ph.spare); err != nil {
		return "", err
	}
	ph.tmpfs = time.Since(step)
	c.mounted(t.view(), ph, start)
	return t.dir, nil
}

// bindVolume is step 2 of a Mount: the volume bound, and the container
// the Mount is for when the engine lookup that bound it named only one.
func (c *Controller) bindVolume(ctx context.Context, volume string, ph *phases) (Volume, *container.Summary, error) {
	v, err := c.ensureVolume(volume)
	if err != nil {
		return Volume{}, nil, err
	}
	var users []container.Summary
	if !v.Bound() {
		if v, users, err = c.bind(ctx, volume); err != nil {
			return Volume{}, nil, err
		}
		ph.engine = users != nil
	}
	ph.declared = v.BoundBy
	if len(users) == 1 {
		// The lookup that bound the volume named its only user: this
		// Mount is for it, as surely as a volume mount event would say.
		return v, &users[0], nil
	}
	return v, nil, nil
}

// claimMount is step 3 of a Mount: a task for the mount ID enters the
// table, with a spare's directory when one is ready.
func (c *Controller) claimMount(mountID, volume string, owner *container.Summary, ph *phases) (*task, error) {
	dir := c.spares.take()
	ph.spare = dir != ""
	if !ph.spare {
		dir = c.dir(mountID)
	}
	var o *identity
	if owner != nil {
		id := identityOf(*owner)
		o = &id
	}
	t := newTask(mountID, volume, dir, o)
	if !c.tasks.claim(t) {
		if ph.spare {
			c.spares.putBack(dir)
		}
		return nil, fmt.Errorf("mount ID %s is already mounted", mountID)
	}
	if ph.spare {
		c.spares.release(dir) // the task holds it now
	}
	return t, nil
}

// volumeEntries is step 4 of a Mount: what the volume holds now, its
// declaration with its live grants and revokes.
func (c *Controller) volumeEntries(volume string) ([]declaration.Entry, error) {
	v, ok := c.vols.get(volume)
	if !ok {
		return nil, fmt.Errorf("volume %s was removed while it was being mounted", volume)
	}
	return v.Entries()
}

// undoMount takes back a failed Mount's steps: the spare it filled, its
// place in the table, its record.
func (c *Controller) undoMount(t *task, spare bool, err error) error {
	if spare {
		// A spare Fill refused (or never saw) is still mounted, and its
		// directory is not named for this mount: nothing else would ever
		// remove it.
		if _, werr := tmpfs.Wipe(t.dir); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	c.tasks.remove(t)
	c.removeRecord(dirBase(t.dir))
	t.abandon()
	return err
}

// mounted reports a Mount that succeeded: to the audit trail when its
// container is known (named now, so never again: see identify), the
// latency ring and the log.
func (c *Controller) mounted(v taskView, ph phases, start time.Time) {
	if v.name != "" {
		c.auditMount(v)
	}
	d := time.Since(start)
	c.mountTimes.add(d)
	c.cfg.Log.Info("secrets mounted", "volume", v.volume, "mount", v.dir, "secrets", len(v.entries), "duration", d,
		"declared", ph.declared, "engine_lookup", ph.engine, "spare", ph.spare, "resolve", ph.resolve,
		"record", ph.record, "decrypt", ph.decrypt, "tmpfs", ph.tmpfs)
}

// files decrypts every entry, or fetches it from its source for container
// who (see reveal for mounted). Each secret is revealed once even when it
// is declared at several targets.
func (c *Controller) files(ctx context.Context, entries []declaration.Entry, who func() source.Container, mounted string) (content, error) {
	type key struct {
		name    string
		version int
	}
	type revealed struct {
		data    []byte
		version int
		id      string
	}
	plain := map[key]revealed{}
	var total int64
	var files []tmpfs.File
	versions := make([]int, len(entries))
	ids := make([]string, len(entries))
	for i, e := range entries {
		k := key{e.Source, e.Version}
		r, ok := plain[k]
		if !ok {
			d, sec, err := c.reveal(ctx, e, who, mounted)
			if err != nil {
				for _, b := range plain {
					clear(b.data)
				}
				return content{}, err
			}
			r = revealed{data: d, version: e.Version, id: sec.ID}
			if e.Version == 0 {
				r.version = sec.Current
			}
			plain[k] = r
		}
		versions[i], ids[i] = r.version, r.id
		// Every file counts, a secret at two targets twice: the cap
		// bounds what one Mount puts in memory.
		if total += int64(len(r.data)); c.cfg.MaxMountSize > 0 && total > c.cfg.MaxMountSize {
			for _, b := range plain {
				clear(b.data)
			}
			return content{}, errdefs.Errorf(errdefs.ErrInvalid, "the secrets declared for this mount hold more than %d bytes (secretd daemon --max-mount-size): declare fewer or smaller secrets", c.cfg.MaxMountSize)
		}
		files = append(files, tmpfs.File{Path: e.Target, Data: r.data, UID: e.UID, GID: e.GID, Mode: e.Mode})
	}
	return content{files, versions, ids}, nil
}
