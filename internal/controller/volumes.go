package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/atomicfile"
)

// OptionSecrets is the one volume option: the volume's declaration.
const OptionSecrets = "secrets"

// Where a volume's declaration came from.
const (
	// BoundByOption: the volume's own secrets option.
	BoundByOption = "option"
	// BoundByLabel: the secretd.secrets label of the container created
	// with the volume.
	BoundByLabel = "label"
)

// Volume is what secretd keeps of one volume of its driver. The engine
// keeps driver options in its own database and never sends them again, so
// they, and what was learned since, must survive restarts here. It holds
// names and declarations, never secret data.
type Volume struct {
	Name    string            `json:"name"`
	Options map[string]string `json:"options,omitempty"`
	Created time.Time         `json:"created"`
	// Declaration is fixed once and never read from labels again; ""
	// while the volume is unbound.
	Declaration string `json:"declaration,omitempty"`
	// BoundBy is BoundByOption or BoundByLabel; "" while unbound.
	BoundBy string `json:"bound_by,omitempty"`
	// BoundTo is the container whose label bound the volume.
	BoundTo string `json:"bound_to,omitempty"`
	// Grants are live grants (canonical entries) and Revokes live revokes
	// (source names) of `secretd container update`; they live as long as
	// the volume.
	Grants  []string `json:"grants,omitempty"`
	Revokes []string `json:"revokes,omitempty"`
}

// Bound reports whether the volume's declaration is fixed.
func (v Volume) Bound() bool { return v.BoundBy != "" }

// Entries is the volume's declaration with its live grants and revokes.
// An empty result is valid: every secret was revoked.
func (v Volume) Entries() ([]declaration.Entry, error) {
	base, err := declaration.Parse(v.Declaration)
	if err != nil {
		return nil, err
	}
	return applyGrants(base, v.Grants, v.Revokes)
}

func (v Volume) clone() Volume {
	v.Options = maps.Clone(v.Options)
	v.Grants = slices.Clone(v.Grants)
	v.Revokes = slices.Clone(v.Revokes)
	return v
}

// applyGrants returns base without the revoked sources and with the
// grants, checked as one declaration so a grant cannot collide with a
// declared target.
func applyGrants(base []declaration.Entry, grants, revokes []string) ([]declaration.Entry, error) {
	if len(grants) == 0 && len(revokes) == 0 {
		return base, nil
	}
	var out []declaration.Entry
	for _, e := range base {
		if !slices.Contains(revokes, e.Source) {
			out = append(out, e)
		}
	}
	for _, g := range grants {
		es, err := declaration.Parse(g)
		if err != nil {
			return nil, err
		}
		out = append(out, es...)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return declaration.Parse(declaration.Format(out))
}

// registry is the persisted set of volumes: one JSON file, written to a
// temporary file, synced and renamed over the old one on every change.
//
// Writers hold saveMu across the change and the write, so files land in
// the order of the changes; mu is held only to touch the map, so a Mount
// reading a record never waits on a disk sync.
type registry struct {
	path   string
	saveMu sync.Mutex
	mu     sync.RWMutex
	m      map[string]Volume
}

// loadRegistry reads path. Files written before declarations were bound
// hold name, options and creation time only: a volume with a secrets
// option is bound to it here, one without stays unbound until its
// container's label is learned.
func loadRegistry(path string) (*registry, error) {
	r := &registry{path: path, m: map[string]Volume{}}
	if path == "" {
		return r, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read volumes: %w", err)
	}
	if err := json.Unmarshal(b, &r.m); err != nil {
		return nil, fmt.Errorf("volumes file %s is corrupted (%v): the file is left as it is", path, err)
	}
	for name, v := range r.m {
		v.Name = name
		if decl := v.Options[OptionSecrets]; decl != "" && !v.Bound() {
			v.Declaration, v.BoundBy = decl, BoundByOption
		}
		r.m[name] = v
	}
	return r, nil
}

func (r *registry) get(name string) (Volume, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	v, ok := r.m[name]
	return v.clone(), ok
}

func (r *registry) list() []Volume {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Volume, 0, len(r.m))
	for _, v := range r.m {
		out = append(out, v.clone())
	}
	slices.SortFunc(out, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// has reports whether the volume is recorded.
func (r *registry) has(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.m[name]
	return ok
}

// anyUnbound reports whether some volume waits for its declaration.
func (r *registry) anyUnbound() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.m {
		if !v.Bound() {
			return true
		}
	}
	return false
}

// errKeptInMemory reports a record kept in memory only.
type errKeptInMemory struct{ err error }

func (e errKeptInMemory) Error() string { return "volume kept in memory only: " + e.err.Error() }
func (e errKeptInMemory) Unwrap() error { return e.err }

// change applies fn to the record of name (the zero Volume with ok false
// when there is none) and saves; fn returning remove deletes the record.
// On a failed save the change is undone, except for a record that carries
// no option and no grants: its declaration, if any, came from a label and
// would be learned again by the same rule, so a full disk must not stop
// containers.
func (r *registry) change(name string, fn func(v *Volume, ok bool) (remove bool, err error)) (Volume, error) {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	old, had := r.m[name]
	v := old.clone()
	remove, err := fn(&v, had)
	if err != nil {
		r.mu.Unlock()
		return Volume{}, err
	}
	v.Name = name
	if remove {
		delete(r.m, name)
	} else {
		r.m[name] = v
	}
	r.mu.Unlock()
	if err := r.save(); err != nil {
		if !remove && len(v.Options) == 0 && len(v.Grants)+len(v.Revokes) == 0 {
			return v.clone(), errKeptInMemory{err}
		}
		r.mu.Lock()
		if had {
			r.m[name] = old
		} else {
			delete(r.m, name)
		}
		r.mu.Unlock()
		return Volume{}, err
	}
	return v.clone(), nil
}

func (r *registry) save() error {
	if r.path == "" {
		return nil
	}
	r.mu.RLock()
	b, err := json.Marshal(r.m)
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(r.path, b); err != nil {
		return fmt.Errorf("save volumes: %w", err)
	}
	return nil
}
