package driver

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// volumeRecord is what secretd remembers of a volume dockerd created: the
// engine keeps driver options in its own database and never sends them
// again, so they must survive secretd restarts here.
type volumeRecord struct {
	Name      string            `json:"name"`
	Options   map[string]string `json:"options,omitempty"`
	CreatedAt time.Time         `json:"created"`
}

// volumes is the persisted set of volumes, one JSON file rewritten
// atomically on every change. It holds declarations, never secret data.
//
// Writers hold saveMu across the change and the file write, so files are
// written in the order of the changes; mu is held only to touch the map,
// so a Mount reading a declaration never waits on a disk sync (the
// anonymous volumes of concurrent `docker run`s are created, and saved,
// while other containers' Mounts run).
type volumes struct {
	path   string
	saveMu sync.Mutex
	mu     sync.RWMutex
	m      map[string]volumeRecord
}

func loadVolumes(path string) (*volumes, error) {
	v := &volumes{path: path, m: map[string]volumeRecord{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return v, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read volumes: %w", err)
	}
	if err := json.Unmarshal(b, &v.m); err != nil {
		return nil, fmt.Errorf("volumes file %s is corrupted (%v): the file is left as it is", path, err)
	}
	return v, nil
}

func (v *volumes) get(name string) (volumeRecord, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	r, ok := v.m[name]
	return r, ok
}

func (v *volumes) list() []volumeRecord {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.SortedFunc(maps.Values(v.m), func(a, b volumeRecord) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
}

// put records a volume. A volume without options (the anonymous volume of
// a `docker run --mount`) carries nothing that would be lost, so when the
// data root cannot be written it is kept in memory and saved with the next
// write: a full disk must not stop containers that declare by label.
func (v *volumes) put(r volumeRecord) error {
	v.saveMu.Lock()
	defer v.saveMu.Unlock()
	v.mu.Lock()
	old, had := v.m[r.Name]
	v.m[r.Name] = r
	v.mu.Unlock()
	if err := v.save(); err != nil {
		if len(r.Options) == 0 {
			return errNotSaved{err}
		}
		v.mu.Lock()
		if had {
			v.m[r.Name] = old
		} else {
			delete(v.m, r.Name)
		}
		v.mu.Unlock()
		return err
	}
	return nil
}

func (v *volumes) remove(name string) error {
	v.saveMu.Lock()
	defer v.saveMu.Unlock()
	v.mu.Lock()
	old, had := v.m[name]
	delete(v.m, name)
	v.mu.Unlock()
	if !had {
		return nil
	}
	if err := v.save(); err != nil {
		v.mu.Lock()
		v.m[name] = old
		v.mu.Unlock()
		return err
	}
	return nil
}

// errNotSaved reports a record kept in memory only.
type errNotSaved struct{ err error }

func (e errNotSaved) Error() string { return "volume kept in memory only: " + e.err.Error() }

// save writes a temp file, syncs it and renames it over the old one, so a
// crash leaves either the old set or the new one.
func (v *volumes) save() error {
	v.mu.RLock()
	b, err := json.Marshal(v.m)
	v.mu.RUnlock()
	if err != nil {
		return err
	}
	tmp := v.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("save volumes: %w", err)
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save volumes: %w", err)
	}
	if err := os.Rename(tmp, v.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("save volumes: %w", err)
	}
	if d, err := os.Open(filepath.Dir(v.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
