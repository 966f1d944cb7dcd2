package controller

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"maps"
	"path/filepath"
	"sync"
	"time"

	"github.com/secretd/secretd/tmpfs"
)

// spares holds empty tmpfs mounts made ahead of time, so a Mount fills one
// instead of calling mount(2). mount(2) takes a lock global to the kernel
// that every container start on the host takes many times: beside 8
// parallel `docker run`s it took p99 6 ms and up to 27 ms, the largest part
// of a slow Mount. Filling a spare only remounts, which does not take it.
//
// A spare passes to a task in three steps, so that a resync, which reads
// the spares before the task table, always finds its directory in one of
// them: take (it is no longer free, still owned), the task's claim in the
// table, then release (no longer owned).
type spares struct {
	root string

	mu   sync.Mutex
	free []string // directories of ready spares
	// owned names the spares that are free, being made, or being handed
	// to a task: Resync must neither adopt nor wipe them.
	owned map[string]bool
	kick  chan struct{}
}

func newSpares(root string) *spares {
	return &spares{root: root, owned: map[string]bool{}, kick: make(chan struct{}, 1)}
}

// sparePrefix names spare directories. It holds a dot, which mount IDs
// never do, so a spare cannot collide with a mount made on demand.
const sparePrefix = "spare."

// spareRetry paces attempts after a spare could not be made (a full mount
// root, a kernel out of mounts): Mounts go on without spares meanwhile.
const spareRetry = time.Second

// take hands out a ready spare's directory, or "" when none is left. It
// stays owned until release.
func (s *spares) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.free)
	if n == 0 {
		return ""
	}
	dir := s.free[n-1]
	s.free = s.free[:n-1]
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return dir
}

// release gives up a taken spare: a task holds it now, or it was wiped.
func (s *spares) release(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.owned, dirBase(dir))
}

// putBack returns a taken spare unused.
func (s *spares) putBack(dir string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.free = append(s.free, dir)
}

// ownedNames names the spares' directories.
func (s *spares) ownedNames() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.owned)
}

// ready counts the spares ready to fill.
func (s *spares) ready() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.free)
}

// keep keeps n spares ready until ctx ends, then wipes the ones left.
func (s *spares) keep(ctx context.Context, n int, log *slog.Logger) {
	defer s.drop(log)
	for {
		for ctx.Err() == nil && s.ready() < n {
			if err := s.make(); err != nil {
				log.Warn("spare mount not made: containers get mounts made on demand until one is", "err", err)
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
		case <-s.kick:
		}
	}
}

func (s *spares) make() error {
	var b [8]byte
	rand.Read(b[:])
	name := sparePrefix + hex.EncodeToString(b[:])
	s.mu.Lock()
	s.owned[name] = true
	s.mu.Unlock()
	dir := filepath.Join(s.root, name)
	if err := tmpfs.Prepare(dir); err != nil {
		s.release(dir)
		return err
	}
	s.putBack(dir)
	return nil
}

// drop unmounts the spares no container took: they hold nothing, but a
// stopped daemon should leave no mounts behind.
func (s *spares) drop(log *slog.Logger) {
	s.mu.Lock()
	free := s.free
	s.free = nil
	s.mu.Unlock()
	for _, dir := range free {
		if _, err := tmpfs.Wipe(dir); err != nil {
			log.Warn("spare mount not removed", "mount", dir, "err", err)
		}
		s.release(dir)
	}
}

// KeepSpares keeps Config.Spares spares ready until ctx ends, then wipes
// the ones left, filled ahead of a Mount (see staging) or not. Start it
// after the first Resync, which wipes any spares a previous run left
// behind.
func (c *Controller) KeepSpares(ctx context.Context) {
	defer c.staging.stop()
	c.spares.keep(ctx, c.cfg.Spares, c.cfg.Log)
}
