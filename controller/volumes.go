package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/atomicfile"
)

// The volume options: the volume's declaration of secrets and of configs
// (same syntax), the file of a one-file volume, and the container's whole
// declaration for templates when it is spread over several volumes.
const (
	OptionSecrets = "secrets"
	OptionConfigs = "configs"
	OptionScope   = declaration.OptionScope
)

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
	// Scope is the whole declaration (canonical, targets as declared) of
	// the container whose entries are spread over several volumes,
	// this one among them: its templates read from it. "" when the
	// volume's own entries are all the container declares.
	Scope string `json:"scope,omitempty"`
	// Grants are live grants (canonical entries) and Revokes live revokes
	// (source names) of `secretd container update`; they live as long as
	// the volume.
	Grants  []string `json:"grants,omitempty"`
	Revokes []string `json:"revokes,omitempty"`
	// OnUpdate is what happens to the volume's containers after a
	// rotation, a canonical secretd.on-update value. Like the declaration
	// it is fixed once: the volume's on-update option, or the label of
	// the container created with the volume, learned with the binding
	// (see bind.go). "" while not learned.
	OnUpdate string `json:"on_update,omitempty"`
	// Format is formatOnUpdate for records made since a volume's on-update
	// is learned before its first Mount; 0 for earlier records.
	Format int `json:"format,omitempty"`
}

// formatOnUpdate marks a record whose on-update is learned before its
// first Mount. An earlier record, bound before on-update belonged to the
// volume, learns it off the start path: its containers ran before the
// upgrade, and at the engine's boot a Mount that asked the engine would
// wait for an answer that comes only after the Mount.
const formatOnUpdate = 1

// Bound reports whether the volume's declaration is fixed.
func (v Volume) Bound() bool { return v.BoundBy != "" }

// Settled reports whether the volume's declaration and on-update are
// both fixed: nothing is left to learn from its containers.
func (v Volume) Settled() bool { return v.Bound() && v.OnUpdate != "" }

// mountable reports whether a Mount can be built from the record alone:
// settled, or bound by an earlier version, whose on-update is learned off
// the start path.
func (v Volume) mountable() bool {
	return v.Settled() || (v.Bound() && v.Format < formatOnUpdate)
}

// onUpdate is the volume's on-update action; none while not learned.
func (v Volume) onUpdate() OnUpdate {
	o, err := ParseOnUpdate(v.OnUpdate)
	if err != nil {
		return OnUpdate{Action: "none"}
	}
	return o
}

// oneFile reports whether the volume is one file, bound at an absolute
// target of its container (the file option).
func (v Volume) oneFile() bool { return v.Options[declaration.OptionFile] != "" }

// Entries is the volume's declaration with its live grants and revokes.
// An empty result is valid: every secret was revoked.
func (v Volume) Entries() ([]declaration.Entry, error) {
	base, err := declaration.Parse(v.Declaration)
	if err != nil {
		return nil, err
	}
	return applyGrants(base, v.Grants, v.Revokes)
}

// ScopeEntries is what the templates of the volume's mounts may read, by
// target: the container's whole declaration when the volume has one (less
// what was revoked from this volume), else the volume's own entries.
func (v Volume) ScopeEntries() ([]declaration.Entry, error) {
	entries, err := v.Entries()
	if err != nil || v.Scope == "" {
		return entries, err
	}
	scope, err := declaration.ParseLabel(v.Scope)
	if err != nil {
		return nil, err
	}
	scope = slices.DeleteFunc(scope, func(e declaration.Entry) bool { return slices.Contains(v.Revokes, revokeKey(e)) })
	// Grants made live here are readable too.
	for _, e := range entries {
		if !slices.ContainsFunc(scope, func(x declaration.Entry) bool { return x.Kind == e.Kind && x.Source == e.Source }) {
			scope = append(scope, e)
		}
	}
	return scope, nil
}

// revokeKey is how a revoke names an entry's source in Volume.Revokes: a
// secret by its name (as before configs), a config as config=NAME.
func revokeKey(e declaration.Entry) string {
	return revokeName(e.Kind, e.Source)
}

func revokeName(kind declaration.Kind, name string) string {
	if kind == declaration.Config {
		return "config=" + name
	}
	return name
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
		if !slices.Contains(revokes, revokeKey(e)) {
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

// registry is the persisted set of volumes: one JSON file per volume in a
// directory, each written to a temporary file, synced and renamed over the
// old one. A change writes its own volume's record and nothing else, so a
// host with many volumes pays the same per `docker run` as one with few.
// mu is held only to touch the map, so a Mount reading a record never
// waits on a disk sync.
type registry struct {
	dir string
	mu  sync.RWMutex
	m   map[string]Volume
	// gen counts changes; last is the change that last touched each
	// name, so a failed write undoes only what no later change replaced.
	gen  uint64
	last map[string]uint64

	// writing orders the writes of one name: each writes what the map
	// holds when it runs, so the last to run leaves the newest record.
	writing [16]sync.Mutex
	// learned queues the saves learn asks for, written by one goroutine
	// at a time (see learn); pending counts those not written yet.
	learned saveQueue
	pending sync.WaitGroup
}

// saveQueue holds the names whose learned binding is still to be saved,
// in the order learned, each once however often it was learned meanwhile:
// a save writes what the map holds when it runs.
type saveQueue struct {
	mu      sync.Mutex
	names   []string
	failed  map[string]func(error) // the latest caller's, per queued name
	running bool
}

// recordExt ends a volume's record file; volume names never hold a
// slash, and a name is refused unless it is safe as a file name.
const recordExt = ".json"

// volumeNameRE is Docker's rule for volume names.
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$`)

func validVolumeName(name string) error {
	if !volumeNameRE.MatchString(name) {
		return errdefs.Errorf(errdefs.ErrInvalid, "invalid volume name %q: it must match %s", name, volumeNameRE)
	}
	return nil
}

// loadRegistry reads the records in dir. legacy is the one file in which
// earlier versions kept every volume: its volumes move into dir, then it
// is removed. Records written before declarations were bound hold name,
// options and creation time only: a volume with a secrets option is bound
// to it here, one without stays unbound until its container's label is
// learned.
func loadRegistry(dir, legacy string) (*registry, error) {
	r := &registry{dir: dir, m: map[string]Volume{}, last: map[string]uint64{}}
	if dir == "" {
		return r, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the volumes directory: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read volumes: %w", err)
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), recordExt)
		if !ok || !e.Type().IsRegular() {
			if strings.HasSuffix(e.Name(), recordExt+".tmp") {
				os.Remove(filepath.Join(dir, e.Name())) // a write a crash cut short
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read volumes: %w", err)
		}
		if len(b) == 0 {
			// A learned binding a host crash cut short (see save): every
			// synced record is whole. The volume is bound again as it
			// was first.
			r.m[name] = Volume{Name: name, Created: time.Now().UTC(), Format: formatOnUpdate}
			continue
		}
		var v Volume
		if err := json.Unmarshal(b, &v); err != nil {
			return nil, fmt.Errorf("volume record %s is corrupted (%v): the file is left as it is", filepath.Join(dir, e.Name()), err)
		}
		v.Name = name
		r.m[name] = bindOption(v)
	}
	if legacy != "" {
		if err := r.migrate(legacy); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// migrate moves the volumes of an earlier version's single file into the
// directory, then removes the file; a volume already in the directory is
// newer and stays.
func (r *registry) migrate(legacy string) error {
	b, err := os.ReadFile(legacy)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read volumes: %w", err)
	}
	var old map[string]Volume
	if err := json.Unmarshal(b, &old); err != nil {
		return fmt.Errorf("volumes file %s is corrupted (%v): the file is left as it is", legacy, err)
	}
	for name, v := range old {
		if _, ok := r.m[name]; ok {
			continue
		}
		if err := validVolumeName(name); err != nil {
			return fmt.Errorf("volumes file %s: %w", legacy, err)
		}
		v.Name = name
		r.m[name] = bindOption(v)
		if err := r.sync(name); err != nil {
			return err
		}
	}
	if err := os.Remove(legacy); err != nil {
		return fmt.Errorf("remove the migrated volumes file: %w", err)
	}
	return nil
}

// bindOption binds what a record's options fix: its declaration and its
// on-update.
func bindOption(v Volume) Volume {
	if decl := optionDeclaration(v.Options); decl != "" && !v.Bound() {
		v.Declaration, v.BoundBy, v.Scope = decl, BoundByOption, v.Options[OptionScope]
	}
	if opt, ok := v.Options[OptionOnUpdate]; ok && v.OnUpdate == "" {
		if o, err := declaration.ParseOnUpdateOption(opt); err == nil {
			v.OnUpdate = o.String()
		}
	}
	return v
}

// optionDeclaration is the declaration a volume's options give: the
// secrets option as written when it is the only one, else the canonical
// form of both; "" when there is none (or it does not parse, which
// CreateVolume refused).
func optionDeclaration(opts map[string]string) string {
	secrets, configs := opts[OptionSecrets], opts[OptionConfigs]
	if configs == "" {
		return secrets
	}
	entries, err := declaration.ParseVolume(secrets, configs)
	if err != nil {
		return ""
	}
	return declaration.Format(entries)
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

// unbound returns up to n volumes that wait for their declaration or
// their on-update, newest first: a container is created with a volume
// just made.
func (r *registry) unbound(n int) []string {
	r.mu.RLock()
	var vs []Volume
	for _, v := range r.m {
		if !v.Settled() {
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
	v, remove, undo, err := r.apply(name, fn)
	if err != nil {
		return Volume{}, err
	}
	if err := r.sync(name); err != nil {
		if !remove && v.relearnable() {
			return v.clone(), errKeptInMemory{err}
		}
		undo()
		return Volume{}, err
	}
	return v.clone(), nil
}

// learn applies a change that the binding rule would make again after a
// crash, and saves it behind the caller: a label Mount must not wait on a
// disk sync for what a restart learns again. The saves are written one at
// a time by one goroutine: a startup resync learns a binding for every
// volume on the host, and thousands of parallel saves would take the cores
// the resync needs, with a goroutine each. A failed save is reported to
// failed and the record stays in memory, as change keeps it.
func (r *registry) learn(name string, fn func(v *Volume, ok bool) (remove bool, err error), failed func(error)) (Volume, error) {
	v, _, _, err := r.apply(name, fn)
	if err != nil {
		return Volume{}, err
	}
	q := &r.learned
	q.mu.Lock()
	if q.failed == nil {
		q.failed = map[string]func(error){}
	}
	if _, queued := q.failed[name]; !queued {
		q.names = append(q.names, name)
		r.pending.Add(1)
	}
	q.failed[name] = failed
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go r.saveLearned()
	}
	return v.clone(), nil
}

// saveLearned writes the queued saves until none is left.
func (r *registry) saveLearned() {
	q := &r.learned
	for {
		q.mu.Lock()
		if len(q.names) == 0 {
			q.running = false
			q.names = nil // let a large queue's array go
			q.mu.Unlock()
			return
		}
		name := q.names[0]
		q.names = q.names[1:]
		failed := q.failed[name]
		delete(q.failed, name)
		q.mu.Unlock()
		if err := r.save(name, true); err != nil {
			failed(err)
		}
		r.pending.Done()
	}
}

// apply makes the change in memory and returns how to undo it.
func (r *registry) apply(name string, fn func(v *Volume, ok bool) (remove bool, err error)) (v Volume, remove bool, undo func(), err error) {
	if err := validVolumeName(name); err != nil {
		return Volume{}, false, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old, had := r.m[name]
	v = old.clone()
	if remove, err = fn(&v, had); err != nil {
		return Volume{}, false, nil, err
	}
	v.Name = name
	if remove {
		delete(r.m, name)
	} else {
		r.m[name] = v
	}
	r.gen++
	gen, prev := r.gen, r.last[name]
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
	return v, remove, undo, nil
}

// flush waits for the saves learn started.
func (r *registry) flush() { r.pending.Wait() }

// sync writes the record of name as the map holds it now, or removes it,
// so that it survives a crash of the host.
func (r *registry) sync(name string) error { return r.save(name, false) }

// save is sync. learned says the caller's change is one the binding rule
// makes again after a crash (see learn): then a record that holds nothing
// but what the rule learns (no option, grant or revoke) is written without
// syncing it, as a startup resync of 10,000 containers would otherwise sync
// 10,000 files. A host crash can leave such a record empty, which
// loadRegistry reads as a volume not bound yet; a record that holds more
// is synced whoever writes it.
func (r *registry) save(name string, learned bool) error {
	if r.dir == "" {
		return nil
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	l := &r.writing[h.Sum32()%uint32(len(r.writing))]
	l.Lock()
	defer l.Unlock()
	r.mu.RLock()
	v, ok := r.m[name]
	var b []byte
	var err error
	if ok {
		b, err = json.Marshal(v)
	}
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	p := filepath.Join(r.dir, name+recordExt)
	if !ok {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove volume record: %w", err)
		}
		return nil
	}
	write := atomicfile.Write
	if learned && v.relearnable() {
		write = atomicfile.WriteUnsynced
	}
	if err := write(p, b); err != nil {
		return fmt.Errorf("save volume %s: %w", name, err)
	}
	return nil
}

// relearnable reports whether the record holds only what the binding rule
// learns again after a crash: no option (which dockerd gives only at the
// volume's create) and no live grant or revoke.
func (v Volume) relearnable() bool {
	return len(v.Options) == 0 && len(v.Grants)+len(v.Revokes) == 0
}

// mountEntries is what a volume holds now for step 4 of a Mount: its
// declaration with its live grants and revokes.
func (r *registry) mountEntries(volume string) ([]declaration.Entry, error) {
	v, ok := r.get(volume)
	if !ok {
		return nil, fmt.Errorf("volume %s was removed while it was being mounted", volume)
	}
	return v.Entries()
}
