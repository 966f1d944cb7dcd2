package controller

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"
)

// ownerLookupTimeout bounds the engine call Mount makes to find the
// container being started. At boot dockerd restarts its containers before
// it answers API calls, and waits on Mount while it does: without a bound
// the two wait on each other until dockerd gives up.
const ownerLookupTimeout = 2 * time.Second

// owners remembers, per volume, the container it was last mounted for and
// that container's secretd labels, so Mount can go on when the engine
// cannot answer. Labels of a container never change, so the cache cannot
// go stale for the volume of one container.
//
// Each volume has its own small file: a Mount writes one entry, not the
// whole cache, so its cost does not grow with the number of containers.
// Files are written behind the map, by one goroutine at a time: on a disk
// busy with container starts a write held a Mount for 10 ms, and an entry
// not on disk yet only matters if the daemon dies in the meantime.
type owners struct {
	dir string
	mu  sync.Mutex
	m   map[string]owner
	// dirty holds the volumes whose file may not match m; writing is set
	// while a goroutine catches up, and idle is signalled when it stops.
	dirty   map[string]bool
	writing bool
	idle    *sync.Cond
	// failed reports a file that could not be written or removed.
	failed func(volume string, err error)
}

// volumeNameRE is dockerd's rule for volume names; only such names become
// file names.
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)

const ownerSuffix = ".owner"

// loadOwners reads the cache from dir. It runs before any Mount is
// served, so temporary files are leftovers of a crash.
func loadOwners(dir string) *owners {
	o := &owners{dir: dir, m: map[string]owner{}, dirty: map[string]bool{}, failed: func(string, error) {}}
	o.idle = sync.NewCond(&o.mu)
	if dir == "" {
		return o
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	for _, t := range tmps {
		os.Remove(t)
	}
	// A damaged entry is only a cache miss: skip it rather than refuse.
	paths, _ := filepath.Glob(filepath.Join(dir, "*"+ownerSuffix))
	for _, p := range paths {
		var w owner
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &w) == nil && w.ID != "" {
			o.m[strings.TrimSuffix(filepath.Base(p), ownerSuffix)] = w
		}
	}
	return o
}

func (o *owners) get(volume string) (owner, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.m[volume]
	return w, ok
}

// remember keeps the owner's secretd labels only, and writes only when
// something changed: restart-policy restarts reuse their volume.
func (o *owners) remember(volume string, w owner) {
	kept := owner{ID: w.ID, Names: w.Names, Labels: map[string]string{}}
	for k, v := range w.Labels {
		if strings.HasPrefix(k, "secretd.") {
			kept.Labels[k] = v
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if old, ok := o.m[volume]; ok && old.ID == kept.ID && maps.Equal(old.Labels, kept.Labels) {
		return
	}
	o.m[volume] = kept
	o.markLocked(volume)
}

// forget drops the volumes of a removed container.
func (o *owners) forget(containerID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for v, w := range o.m {
		if w.ID == containerID {
			delete(o.m, v)
			o.markLocked(v)
		}
	}
}

// markLocked queues volume's file for writing; o.mu held.
func (o *owners) markLocked(volume string) {
	if _, ok := o.path(volume); !ok {
		return
	}
	o.dirty[volume] = true
	if !o.writing {
		o.writing = true
		go o.catchUp()
	}
}

// catchUp makes every dirty file match the map. Only one runs at a time,
// so writes of one volume never race.
func (o *owners) catchUp() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.dirty) > 0 {
		for v := range o.dirty {
			delete(o.dirty, v)
			w, ok := o.m[v]
			o.mu.Unlock()
			var err error
			if ok {
				err = o.write(v, w)
			} else if p, _ := o.path(v); p != "" {
				if err = os.Remove(p); errors.Is(err, os.ErrNotExist) {
					err = nil
				}
			}
			if err != nil {
				o.failed(v, err)
			}
			o.mu.Lock()
		}
	}
	o.writing = false
	o.idle.Broadcast()
}

// wait returns once every file matches the map.
func (o *owners) wait() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for o.writing {
		o.idle.Wait()
	}
}

func (o *owners) path(volume string) (string, bool) {
	if o.dir == "" || !volumeNameRE.MatchString(volume) {
		return "", false
	}
	return filepath.Join(o.dir, volume+ownerSuffix), true
}

// write replaces one entry atomically. No fsync: this sits on the Mount
// path, and an entry lost in a host crash only costs a lookup.
func (o *owners) write(volume string, w owner) error {
	p, ok := o.path(volume)
	if !ok {
		return nil
	}
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	// Two Mounts of one volume may write at once: each needs its own
	// temporary file.
	f, err := os.CreateTemp(o.dir, volume+".*.tmp")
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		return errors.Join(err, os.Remove(f.Name()))
	}
	return nil
}
