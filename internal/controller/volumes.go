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
// temporary file, synced and renamed over the old one.
//
// Writes are grouped: a change waits until a write that includes it is
// on disk, and one write carries every change made while the previous one
// was syncing, so a burst of `docker run`s creating volumes pays a few
// syncs, not one each. mu is held only to touch the map, so a Mount
// reading a record never waits on a disk sync.
type registry struct {
	path string
	mu   sync.RWMutex
	m    map[string]Volume
	// gen counts changes; last is the change that last touched each
	// name, so a failed write undoes only what no later change replaced.
	gen  uint64
	last map[string]uint64

	// writeMu is held by the one write under way; saved is the last
	// change it put on disk.
	writeMu sync.Mutex
	saved   uint64
	// pending counts the saves learn started.
	pending sync.WaitGroup
}

// loadRegistry reads path. Files written before declarations were bound
// hold name, options and creation time only: a volume with a secrets
// option is bound to it here, one without stays unbound until its
// container's label is learned.
func loadRegistry(path string) (*registry, error) {
	r := &registry{path: path, m: map[string]Volume{}, last: map[string]uint64{}}
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

// unbound returns up to n volumes that wait for their declaration,
// newest first: a container is created with a volume just made.
func (r *registry) unbound(n int) []string {
	r.mu.RLock()
	var vs []Volume
	for _, v := range r.m {
		if !v.Bound() {
			vs = append(vs, v)
		}
	}
	r.mu.RUnlock()
	slices.SortFunc(vs, func(a, b Volume) int { return b.Created.Compare(a.Created) })
	names := make([]string, 0, min(n, len(vs)))
	for _, v := range vs[:min(n, len(vs))] {
		names = append(names, v.Name)
	}
	return names
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
	v, remove, undo, gen, err := r.apply(name, fn)
	if err != nil {
		return Volume{}, err
	}
	if err := r.sync(gen); err != nil {
		if !remove && len(v.Options) == 0 && len(v.Grants)+len(v.Revokes) == 0 {
			return v.clone(), errKeptInMemory{err}
		}
		undo()
		return Volume{}, err
	}
	return v.clone(), nil
}

// learn applies a change that the binding rule would make again after a
// crash, and saves it behind the caller: a label Mount must not wait on a
// disk sync for what a restart learns again. A failed save is logged by
// the caller's logger and the record stays in memory, as change keeps it.
func (r *registry) learn(name string, fn func(v *Volume, ok bool) (remove bool, err error), failed func(error)) (Volume, error) {
	v, _, _, gen, err := r.apply(name, fn)
	if err != nil {
		return Volume{}, err
	}
	r.pending.Add(1)
	go func() {
		defer r.pending.Done()
		if err := r.sync(gen); err != nil {
			failed(err)
		}
	}()
	return v.clone(), nil
}

// apply makes the change in memory and returns the change's number and
// how to undo it.
func (r *registry) apply(name string, fn func(v *Volume, ok bool) (remove bool, err error)) (v Volume, remove bool, undo func(), gen uint64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.m[name]
	v = old.clone()
	if remove, err = fn(&v, had); err != nil {
		return Volume{}, false, nil, 0, err
	}
	v.Name = name
	if remove {
		delete(r.m, name)
	} else {
		r.m[name] = v
	}
	r.gen++
	gen = r.gen
	prev := r.last[name]
	r.last[name] = gen
	undo = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.last[name] != gen {
			return // a later change replaced this one
		}
		if had {
			r.m[name] = old
		} else {
			delete(r.m, name)
		}
		r.last[name] = prev
	}
	return v, remove, undo, gen, nil
}

// flush saves every change made so far.
func (r *registry) flush() error {
	r.pending.Wait()
	r.mu.RLock()
	gen := r.gen
	r.mu.RUnlock()
	return r.sync(gen)
}

// sync returns once change gen is on disk: written by this call, or by
// the write under way when it began waiting if that one already held it.
func (r *registry) sync(gen uint64) error {
	if r.path == "" {
		return nil
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if r.saved >= gen {
		return nil
	}
	r.mu.RLock()
	b, err := json.Marshal(r.m)
	upTo := r.gen
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	if err := atomicfile.Write(r.path, b); err != nil {
		return fmt.Errorf("save volumes: %w", err)
	}
	r.saved = upTo
	return nil
}
