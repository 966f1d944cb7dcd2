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

func (c *Controller) mount(ctx context.Context, volume, mountID string) (string, error) {
	start := time.Now()
	if !mountIDRE.MatchString(mountID) {
		return "", fmt.Errorf("invalid mount ID %q", mountID)
	}
	var ph phases
	v, err := c.ensureVolume(volume)
	if err != nil {
		return "", err
	}
	var users []container.Summary
	var who source.Container
	if !v.Bound() {
		if v, users, err = c.bind(ctx, volume); err != nil {
			return "", err
		}
		ph.engine = users != nil
	}
	ph.declared = v.BoundBy
	boundTo := v.BoundTo
	t := &task{mountID: mountID, volume: volume, since: time.Now().UTC(), state: mounting}
	if len(users) == 1 {
		// The lookup that bound the volume named its only user: this
		// Mount is for it, as surely as a volume mount event would say.
		o := identityOf(users[0])
		t.containerID, t.name, t.image = o.ID, o.Name, o.Image
		t.onUpdate, _ = ParseOnUpdate(o.Labels[LabelOnUpdate])
		// A secret driver is told the image as given at create, as Swarm tells the task's.
		who = source.Container{ID: o.ID, Name: o.Name, Image: users[0].Image, Labels: o.Labels, Hostname: c.hostnames.get(o.ID)}
	}
	// Held until the tmpfs is built, so a rotation, a live grant or an
	// Unmount that finds the claim waits and then sees the result.
	t.mu.Lock()
	defer t.mu.Unlock()
	c.mu.Lock()
	if _, dup := c.tasks[mountID]; dup {
		c.mu.Unlock()
		return "", fmt.Errorf("mount ID %s is already mounted", mountID)
	}
	if t.dir = c.takeSpare(); t.dir != "" {
		ph.spare = true
	} else {
		t.dir = c.dir(mountID)
	}
	c.tasks[mountID] = t
	c.mu.Unlock()

	// Read after the claim is in the table: a live grant saved before this
	// is seen here, one saved after finds the claim and rewrites it.
	var entries []declaration.Entry
	if v, ok := c.vols.get(volume); ok {
		entries, err = v.Entries()
	} else {
		err = fmt.Errorf("volume %s was removed while it was being mounted", volume)
	}
	ph.resolve = time.Since(start)
	if err == nil {
		c.mu.Lock()
		t.entries = entries
		snap := t.snap()
		c.mu.Unlock()
		recStart := time.Now()
		err = c.saveRecord(snap)
		ph.record = time.Since(recStart)
	}
	if err == nil {
		err = c.build(ctx, t, entries, c.boundContainer(ctx, who, boundTo), &ph)
	}
	if err != nil {
		if ph.spare {
			// A spare Fill refused (or never saw) is still mounted, and
			// its directory is not named for this mount: nothing else
			// would ever remove it.
			if _, werr := tmpfs.Wipe(t.dir); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		c.mu.Lock()
		delete(c.tasks, mountID)
		c.mu.Unlock()
		c.removeRecord(dirBase(t.dir))
		return "", err
	}
	if s := t.snapUnlocked(c); s.name != "" {
		c.auditMount(s) // named now, so never again (see identify)
	}
	d := time.Since(start)
	c.mountTimes.add(d)
	c.cfg.Log.Info("secrets mounted", "volume", volume, "mount", t.dir, "secrets", len(entries), "duration", d,
		"declared", ph.declared, "engine_lookup", ph.engine, "spare", ph.spare, "resolve", ph.resolve,
		"record", ph.record, "decrypt", ph.decrypt, "tmpfs", ph.tmpfs)
	return t.dir, nil
}

// build decrypts the declared versions and mounts them, into a spare or a
// new tmpfs, and marks the task mounted; t.mu held.
func (c *Controller) build(ctx context.Context, t *task, entries []declaration.Entry, who func() source.Container, ph *phases) error {
	start := time.Now()
	files, versions, ids, err := c.files(ctx, entries, who, "")
	defer wipeFiles(files)
	ph.decrypt = time.Since(start)
	if err != nil {
		return err
	}
	start = time.Now()
	if ph.spare {
		err = tmpfs.Fill(t.dir, files, tmpfs.Options{})
	} else {
		err = tmpfs.Mount(t.dir, files, tmpfs.Options{})
	}
	ph.tmpfs = time.Since(start)
	if err != nil {
		return fmt.Errorf("mount secrets: %w", err)
	}
	c.mu.Lock()
	t.versions, t.ids, t.state = versions, ids, mounted
	c.mu.Unlock()
	return nil
}

// files decrypts every entry, or fetches it from its source for container
// who (see reveal for mounted). Each secret is revealed once even when it
// is declared at several targets.
func (c *Controller) files(ctx context.Context, entries []declaration.Entry, who func() source.Container, mounted string) ([]tmpfs.File, []int, []string, error) {
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
				return nil, nil, nil, err
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
			return nil, nil, nil, errdefs.Errorf(errdefs.ErrInvalid, "the secrets declared for this mount hold more than %d bytes (secretd daemon --max-mount-size): declare fewer or smaller secrets", c.cfg.MaxMountSize)
		}
		files = append(files, tmpfs.File{Path: e.Target, Data: r.data, UID: e.UID, GID: e.GID, Mode: e.Mode})
	}
	return files, versions, ids, nil
}

func wipeFiles(files []tmpfs.File) {
	for _, f := range files {
		clear(f.Data)
	}
}
