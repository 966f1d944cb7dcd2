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
type owners struct {
	dir string
	mu  sync.Mutex
	m   map[string]owner
}

// volumeNameRE is dockerd's rule for volume names; only such names become
// file names.
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)

const ownerSuffix = ".owner"

// loadOwners reads the cache from dir. It runs before any Mount is
// served, so temporary files are leftovers of a crash.
func loadOwners(dir string) *owners {
	o := &owners{dir: dir, m: map[string]owner{}}
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
func (o *owners) remember(volume string, w owner) error {
	kept := owner{ID: w.ID, Names: w.Names, Labels: map[string]string{}}
	for k, v := range w.Labels {
		if strings.HasPrefix(k, "secretd.") {
			kept.Labels[k] = v
		}
	}
	o.mu.Lock()
	if old, ok := o.m[volume]; ok && old.ID == kept.ID && maps.Equal(old.Labels, kept.Labels) {
		o.mu.Unlock()
		return nil
	}
	o.m[volume] = kept
	o.mu.Unlock()
	return o.write(volume, kept)
}

// forget drops the volumes of a removed container.
func (o *owners) forget(containerID string) error {
	var gone []string
	o.mu.Lock()
	for v, w := range o.m {
		if w.ID == containerID {
			delete(o.m, v)
			gone = append(gone, v)
		}
	}
	o.mu.Unlock()
	var errs []error
	for _, v := range gone {
		if p, ok := o.path(v); ok {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
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
