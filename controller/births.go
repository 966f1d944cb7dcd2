package controller

import (
	"context"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
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
// daemon saw created appears in the inspect of a container created next,
// that container is the volume's only user, and the first Mount of the
// volume is for it. Every other case asks the engine as before:
//
//   - a second container created with the volume (--volumes-from, or a
//     named volume given to several containers) voids the birth;
//   - a birth is used once, by the first Mount: a restart, or any later
//     Mount, asks;
//   - a break of the event stream voids every birth, since a create in the
//     gap went unseen, and a restarted daemon knows of none.
//
// Before using a birth a Mount waits, briefly, for the inspects that were
// under way when it came: one of them may be the second container's.
type births struct {
	mu sync.Mutex
	// following is set while the event stream is up: a volume born while
	// it is down may have its container's create go unseen.
	following bool
	m         map[string]*birth // by volume name
	// inflight holds the inspects under way, by the order they started in.
	inflight map[uint64]bool
	started  uint64
	// changed is closed, and replaced, whenever an inspect ends or the
	// births are voided, so waiting Mounts look again.
	changed chan struct{}
}

type birth struct {
	owner owner // the first container created with the volume; zero until known
	void  bool
}

// birthWait bounds how long a Mount waits for the inspect that names a
// volume's container before it asks the engine itself. The inspect starts
// at the container's create, well before its start, so it is normally done
// by the time the Mount comes.
const birthWait = 250 * time.Millisecond

// inspectTimeout bounds one inspect of a new container.
const inspectTimeout = 5 * time.Second

func newBirths() *births {
	return &births{m: map[string]*birth{}, inflight: map[uint64]bool{}, changed: make(chan struct{})}
}

// VolumeBorn tells the controller that the driver just created a volume
// that carries no declaration of its own.
func (c *Controller) VolumeBorn(volume string) {
	b := c.births
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.m[volume]; !ok && b.following {
		b.m[volume] = &birth{}
	}
}

// VolumeGone tells the controller that the driver removed a volume.
func (c *Controller) VolumeGone(volume string) {
	b := c.births
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, volume)
}

// expecting reports whether a born volume still waits for its container,
// i.e. whether a new container is worth an inspect.
func (b *births) expecting() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, br := range b.m {
		if br.owner.ID == "" && !br.void {
			return true
		}
	}
	return false
}

// created inspects a container the engine just created, without holding up
// the event loop, and gives born volumes it mounts their container.
func (c *Controller) created(ctx context.Context, id string) {
	b := c.births
	if c.cfg.Engine == nil || !b.expecting() {
		return
	}
	b.mu.Lock()
	b.started++
	seq := b.started
	b.inflight[seq] = true
	b.mu.Unlock()
	go func() {
		ictx, cancel := context.WithTimeout(ctx, inspectTimeout)
		defer cancel()
		info, err := c.cfg.Engine.ContainerInspect(ictx, id)
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.inflight, seq)
		b.notify()
		if err != nil {
			// Which volumes it uses is unknown: any birth may be its.
			c.cfg.Log.Debug("new container not inspected: its Mounts ask the engine", "container", id, "err", err)
			for _, br := range b.m {
				br.void = true
			}
			return
		}
		o := ownerOfInspect(info)
		for _, m := range info.Mounts {
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
	b.notify()
}

// take returns the container a born volume was created for, once, if it is
// known for certain within birthWait.
func (b *births) take(ctx context.Context, volume string) (owner, bool) {
	timer := time.NewTimer(birthWait)
	defer timer.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	before := b.started
	for {
		br := b.m[volume]
		if br == nil || br.void {
			return owner{}, false
		}
		if br.owner.ID != "" && !b.inspecting(before) {
			delete(b.m, volume)
			return br.owner, true
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
			b.mu.Lock()
		case <-timer.C:
			b.mu.Lock()
			return owner{}, false
		case <-ctx.Done():
			b.mu.Lock()
			return owner{}, false
		}
	}
}

// inspecting reports whether an inspect started at or before seq is still
// under way; b.mu held.
func (b *births) inspecting(seq uint64) bool {
	for s := range b.inflight {
		if s <= seq {
			return true
		}
	}
	return false
}

func ownerOfInspect(info container.InspectResponse) owner {
	o := owner{Names: []string{info.Name}}
	if info.ContainerJSONBase != nil {
		o.ID = info.ID
	}
	if info.Config != nil {
		o.Labels = info.Config.Labels
	}
	return o
}
