package controller

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
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
type owners struct {
	path string
	mu   sync.Mutex
	m    map[string]owner
}

func loadOwners(path string) *owners {
	o := &owners{path: path, m: map[string]owner{}}
	if path == "" {
		return o
	}
	if b, err := os.ReadFile(path); err == nil {
		// A damaged cache is only a cache: start empty rather than refuse.
		json.Unmarshal(b, &o.m)
	}
	return o
}

func (o *owners) get(volume string) (owner, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w, ok := o.m[volume]
	return w, ok
}

// remember keeps the owner's secretd labels only, and writes the file only
// when something changed: restart-policy restarts reuse their volume.
func (o *owners) remember(volume string, w owner) error {
	kept := owner{ID: w.ID, Names: w.Names, Labels: map[string]string{}}
	for k, v := range w.Labels {
		if strings.HasPrefix(k, "secretd.") {
			kept.Labels[k] = v
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if old, ok := o.m[volume]; ok && old.ID == kept.ID && maps.Equal(old.Labels, kept.Labels) {
		return nil
	}
	o.m[volume] = kept
	return o.save()
}

// forget drops the volumes of a removed container.
func (o *owners) forget(containerID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	changed := false
	for v, w := range o.m {
		if w.ID == containerID {
			delete(o.m, v)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return o.save()
}

// save replaces the file atomically. No fsync: this sits on the Mount
// path, and a cache entry lost in a host crash only costs a lookup.
func (o *owners) save() error {
	if o.path == "" {
		return nil
	}
	b, err := json.Marshal(o.m)
	if err != nil {
		return err
	}
	tmp := o.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}
