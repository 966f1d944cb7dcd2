package controller

import (
	"context"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// A Mount of a volume declared by the container's label must learn which
// container is starting, and the engine does not say: asking it (a
// filtered container list) was the whole tail of such Mounts, 94–152 ms at
// p99 on a host busy with 8 parallel starts. births learns it earlier and
// off the start path.
//
// `docker run` creates the container's anonymous volume (the driver's
// Create) and then the container (its "create" event), and only after the
// client's start call does dockerd Mount the volume. So when a volume this
// daemon saw created appears among the mounts of a container created next,
// that container is the volume's only user, and the first Mount of the
// volume is for it. Every other case asks the engine as before:
//
//   - a second container created with the volume (--volumes-from, or a
//     named volume given to several containers) voids the birth, once its
//     own lookup is done;
//   - a birth is used once, by the first Mount: a restart, or any later
//     Mount, asks;
//   - a break of the event stream voids every birth, since a create in the
//     gap went unseen, and a restarted daemon knows of none.
//
// The lookup is a container list filtered by ID, not an inspect: dockerd
// holds a container's lock for its whole start, Mounts included, and an
// inspect waits for that lock, while a list reads a snapshot.
//
// A Mount waits, briefly, for the lookups under way when it came: its own
// container's, and any other's, which may be that of a second container
// created with the volume and started first (--volumes-from). It skips
// those started before the volume was born, and, once its container is
// known, those started before the engine first asked the driver about the
// volume (Get): a second container's create asks, before its create event.
// On an engine that gets a volume before each Mount, a volume's first
// Mount, got that once only, waits for nothing. A Mount that comes with no
// lookup under way and no container known does not wait: dockerd also
// Mounts a volume inside the create, to copy the image's content into it,
// before the container's create event is even sent.
type births struct {
	mu sync.Mutex
	// following is set while the event stream is up: a volume born while
	// it is down may have its container's create go unseen.
	following bool
	m         map[string]*birth // by volume name
	// changed is closed, and replaced, whenever a lookup ends or the
	// births are voided, so waiting Mounts look again.
	changed chan struct{}
	// pending holds the lookups under way, by the order they started in.
	pending map[uint64]bool
	started uint64
	// got holds the volumes the engine got from the driver since their
	// last Mount or Unmount. dockerd 20.10 gets a volume right before it
	// Mounts it; preGets counts the Mounts that came so, and noPreGet is
	// set by one that did not, until the stream breaks (the engine may
	// have been replaced).
	got      map[string]time.Time
	preGets  int
	noPreGet bool
}

// gotKept bounds the Gets remembered: dockerd asks every driver about each
// volume name it does not know (an anonymous local volume's, say), and
// those are never Mounted here. A Get before a Mount is a moment old.
const (
	gotKept = 1024
	gotAge  = 10 * time.Second
)

type birth struct {
	owner owner // the first container created with the volume; zero until known
	void  bool
	// since is the last lookup started before the volume was born. Every
	// container that uses the volume is created after it exists, so the
	// lookups up to since are of other containers, and a Mount need not
	// wait for them.
	since uint64
	// firstGet is the last lookup started before the first Get of the
	// volume since it was born, if got. A container created with a volume
	// that exists makes dockerd Get it from the driver during the create,
	// so before its create event: once the owner is known, the lookups up
	// to firstGet cannot be of a second user either.
	firstGet uint64
	got      bool
	// gets and mounts count the Gets and Mounts of the volume since it
	// was born.
	gets, mounts int
}

// birthWait bounds how long a Mount waits for the lookup that names a
// volume's container before it asks the engine itself. The lookup starts
// at the container's create, before the client even asks for the start.
const birthWait = 250 * time.Millisecond

// lookupTimeout bounds the lookup of one new container.
const lookupTimeout = 5 * time.Second

func newBirths() *births {
	return &births{m: map[string]*birth{}, pending: map[uint64]bool{}, got: map[string]time.Time{}, changed: make(chan struct{})}
}

// VolumeBorn tells the controller that the driver just created a volume
// that carries no declaration of its own.
func (c *Controller) VolumeBorn(volume string) {
	b := c.births
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[volume]; !ok && b.following {
		b.m[volume] = &birth{since: b.started}
	}
}

// VolumeGot tells the controller that the engine asked the driver about a
// volume: it does so for every container created with a volume that
// already exists, and, on the engine measured (20.10), before every Mount.
func (c *Controller) VolumeGot(volume string) {
	b := c.births
	b.mu.Lock()
	defer b.mu.Unlock()
	now := time.Now()
	if len(b.got) >= gotKept {
		for v, at := range b.got {
			if now.Sub(at) > gotAge {
				delete(b.got, v)
			}
		}
	}
	b.got[volume] = now
	if br := b.m[volume]; br != nil {
		br.gets++
		if !br.got {
			br.got, br.firstGet = true, b.started
		}
	}
}

// mounting notes a Mount of volume as it comes, before it resolves: whether
// the engine got the volume right before, as it does before each Mount.
func (b *births) mounting(volume string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.got[volume]; ok {
		b.preGets++
	} else {
		b.noPreGet = true
	}
	delete(b.got, volume)
	if br := b.m[volume]; br != nil {
		br.mounts++
	}
}

// unmounting notes an Unmount: a Get made for it is not one for the next
// Mount.
func (b *births) unmounting(volume string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.got, volume)
}

// getsBeforeMounts reports whether the engine has been seen to get a
// volume before each Mount: by another Mount than the one now under way,
// and with no Mount that came without; b.mu held.
func (b *births) getsBeforeMounts() bool {
	return !b.noPreGet && b.preGets >= 2
}

// VolumeGone tells the controller that the driver removed a volume.
func (c *Controller) VolumeGone(volume string) {
	b := c.births
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, volume)
	delete(b.got, volume)
}

// expecting reports whether a born volume is still unused by a start,
// i.e. whether a new container is worth a lookup: it may be the volume's
// first container, or a second one that voids the birth.
func (b *births) expecting() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, br := range b.m {
		if !br.void {
			return true
		}
	}
	return false
}

// created looks up a container the engine just created, without holding
// up the event loop, and gives born volumes it mounts their container.
func (c *Controller) created(ctx context.Context, id string) {
	b := c.births
	if c.cfg.Engine == nil || !b.expecting() {
		return
	}
	b.mu.Lock()
	b.started++
	seq := b.started
	b.pending[seq] = true
	b.mu.Unlock()
	go func() {
		lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
		defer cancel()
		list, err := c.cfg.Engine.ContainerList(lctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
		b.mu.Lock()
		defer b.mu.Unlock()
		defer b.notify()
		delete(b.pending, seq)
		if err != nil {
			// Which volumes it uses is unknown: any birth may be its.
			c.cfg.Log.Debug("new container not looked up: Mounts ask the engine", "container", id, "err", err)
			for _, br := range b.m {
				br.void = true
			}
			return
		}
		var s *container.Summary
		for i := range list {
			if list[i].ID == id {
				s = &list[i]
			}
		}
		if s == nil {
			return // removed already: it mounts nothing
		}
		o := ownerOf(*s)
		for _, m := range s.Mounts {
			br := b.m[m.Name]
			if m.Type != "volume" || !c.ours(m.Driver) || br == nil {
				continue
			}
			switch {
			case br.owner.ID == "" && !br.void:
				br.owner = o
			case br.owner.ID != o.ID:
				br.void = true
			}
		}
	}()
}

// notify wakes waiting Mounts; b.mu held.
func (b *births) notify() {
	close(b.changed)
	b.changed = make(chan struct{})
}

// follow starts taking births, once the event stream is up.
func (b *births) follow() {
	b.mu.Lock()
	b.following = true
	b.mu.Unlock()
}

// lost forgets every birth and takes no more until follow: the stream
// broke, and events were lost.
func (b *births) lost() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.following = false
	clear(b.m)
	b.preGets, b.noPreGet = 0, false
	b.notify()
}

// take returns the container a born volume was created for, once, if it is
// known for certain within birthWait. known tells whether that container
// was already known when the Mount came, so a wait was for other
// containers' lookups only.
func (b *births) take(ctx context.Context, volume string) (o owner, ok, known bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	before := b.started
	if br := b.m[volume]; br != nil {
		known = br.owner.ID != ""
	}
	// Made only once a Mount must wait: most take nothing at once.
	var timeout <-chan time.Time
	for {
		br := b.m[volume]
		if br == nil || br.void {
			return owner{}, false, known
		}
		if !b.lookingUp(br.waitFrom(before, b.getsBeforeMounts()), before) {
			if br.owner.ID == "" {
				return owner{}, false, known
			}
			delete(b.m, volume)
			return br.owner, true, known
		}
		if timeout == nil {
			timer := time.NewTimer(birthWait)
			defer timer.Stop()
			timeout = timer.C
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
			b.mu.Lock()
		case <-timeout:
			b.mu.Lock()
			return owner{}, false, known
		case <-ctx.Done():
			b.mu.Lock()
			return owner{}, false, known
		}
	}
}

// waitFrom is the last lookup a Mount need not wait for: those up to the
// birth, and, once the owner is known, those up to the first Get since,
// or every lookup when the volume was never got. On an engine that gets a
// volume before each Mount, a first Mount whose volume was got once was
// got for this Mount only: no second container was created with it.
func (br *birth) waitFrom(before uint64, getsBeforeMounts bool) uint64 {
	switch {
	case br.owner.ID == "":
		return br.since
	case !br.got:
		return before
	case getsBeforeMounts && br.gets == 1 && br.mounts == 1:
		return before
	default:
		return max(br.since, br.firstGet)
	}
}

// lookingUp reports whether a lookup started after from and at or before
// to is still under way; b.mu held.
func (b *births) lookingUp(from, to uint64) bool {
	for s := range b.pending {
		if from < s && s <= to {
			return true
		}
	}
	return false
}
