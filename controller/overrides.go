package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/secretd/secretd/declaration"
)

// override is a live change to one container's declaration, made by
// `secretd container update`: it outlives the container's restarts and
// dies with the container.
type override struct {
	Add    []string `json:"add,omitempty"`    // canonical entries
	Remove []string `json:"remove,omitempty"` // source names
}

// overrides persists every container's override in one JSON file,
// rewritten atomically; it holds names, never data.
type overrides struct {
	path string
	mu   sync.Mutex
	m    map[string]override // by container ID
}

func loadOverrides(path string) (*overrides, error) {
	o := &overrides{path: path, m: map[string]override{}}
	if path == "" {
		return o, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return o, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, &o.m); err != nil {
		return nil, fmt.Errorf("container overrides file %s is corrupted (%v): the file is left as it is", path, err)
	}
	return o, nil
}

func (o *overrides) get(containerID string) override {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[containerID]
}

// none reports whether no container has a live grant or revoke.
func (o *overrides) none() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.m) == 0
}

func (o *overrides) set(containerID string, ov override) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	old, had := o.m[containerID]
	if len(ov.Add) == 0 && len(ov.Remove) == 0 {
		delete(o.m, containerID)
	} else {
		o.m[containerID] = ov
	}
	if err := o.save(); err != nil {
		if had {
			o.m[containerID] = old
		} else {
			delete(o.m, containerID)
		}
		return err
	}
	return nil
}

func (o *overrides) drop(containerID string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.m[containerID]; !ok {
		return nil
	}
	delete(o.m, containerID)
	return o.save()
}

func (o *overrides) save() error {
	if o.path == "" {
		return nil
	}
	b, err := json.Marshal(o.m)
	if err != nil {
		return err
	}
	tmp := o.path + ".tmp"
	if err := writeSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, o.path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(o.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func writeSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// apply returns base with the override's removals and additions, checked
// as one declaration so a grant cannot collide with an existing target.
func (ov override) apply(base []declaration.Entry) ([]declaration.Entry, error) {
	if len(ov.Add) == 0 && len(ov.Remove) == 0 {
		return base, nil
	}
	var out []declaration.Entry
	for _, e := range base {
		if !slices.Contains(ov.Remove, e.Source) {
			out = append(out, e)
		}
	}
	for _, a := range ov.Add {
		entries, err := declaration.Parse(a)
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return declaration.Parse(declaration.Format(out))
}
