package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/secretd/secretd/tmpfs"
)

// spares holds empty tmpfs mounts made ahead of time, so a Mount fills one
// instead of calling mount(2). mount(2) takes a lock global to the kernel
// that every container start on the host takes many times: beside 8
// parallel `docker run`s it took p99 6 ms and up to 27 ms, the largest part
// of a slow Mount. Filling a spare only remounts, which does not take it.
//
// Its fields are guarded by Controller.mu, so a spare passes from here to a
// task in one step that Resync never sees half done.
type spares struct {
	free []string // directories of ready spares
	// owned names the spares that are free or being made: Resync must
	// neither adopt nor wipe them.
	owned map[string]bool
	kick  chan struct{}
}

// sparePrefix names spare directories. It holds a dot, which mount IDs
// never do, so a spare cannot collide with a mount made on demand.
const sparePrefix = "spare."

// spareRetry paces attempts after a spare could not be made (a full mount
// root, a kernel out of mounts): Mounts go on without spares meanwhile.
const spareRetry = time.Second

// takeSpare hands out a ready spare's directory, or "" when none is left.
// c.mu must be held.
func (c *Controller) takeSpare() string {
	n := len(c.spares.free)
	if n == 0 {
		return ""
	}
	dir := c.spares.free[n-1]
	c.spares.free = c.spares.free[:n-1]
	delete(c.spares.owned, dirBase(dir))
	select {
	case c.spares.kick <- struct{}{}:
	default:
	}
	return dir
}

// KeepSpares keeps Config.Spares spares ready until ctx ends, then wipes
// the ones left. Start it after the first Resync, which wipes any spares a
// previous run left behind.
func (c *Controller) KeepSpares(ctx context.Context) {
	defer c.dropSpares()
	for {
		for ctx.Err() == nil && c.needSpare() {
			if err := c.makeSpare(); err != nil {
				c.cfg.Log.Warn("spare mount not made: containers get mounts made on demand until one is", "err", err)
				select {
				case <-ctx.Done():
					return
				case <-time.After(spareRetry):
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-c.spares.kick:
		}
	}
}

func (c *Controller) needSpare() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.spares.free) < c.cfg.Spares
}

func (c *Controller) makeSpare() error {
	var b [8]byte
	rand.Read(b[:])
	name := sparePrefix + hex.EncodeToString(b[:])
	c.mu.Lock()
	c.spares.owned[name] = true
	c.mu.Unlock()
	dir := c.dir(name)
	if err := tmpfs.Prepare(dir); err != nil {
		c.mu.Lock()
		delete(c.spares.owned, name)
		c.mu.Unlock()
		return err
	}
	c.mu.Lock()
	c.spares.free = append(c.spares.free, dir)
	c.mu.Unlock()
	return nil
}

// dropSpares unmounts the spares no container took: they hold nothing, but
// a stopped daemon should leave no mounts behind.
func (c *Controller) dropSpares() {
	c.mu.Lock()
	free := c.spares.free
	c.spares.free = nil
	c.mu.Unlock()
	for _, dir := range free {
		if _, err := tmpfs.Wipe(dir); err != nil {
			c.cfg.Log.Warn("spare mount not removed", "mount", dir, "err", err)
		}
		c.mu.Lock()
		delete(c.spares.owned, dirBase(dir))
		c.mu.Unlock()
	}
}
