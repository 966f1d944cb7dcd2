package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/secretd/secretd/internal/store/envelope"
)

// Spec is what a new secret or config is made of.
type Spec struct {
	Name   string
	Labels map[string]string
	// Data is version 1; it may be empty only for a secret with a Source.
	Data []byte
	// Source makes a driver secret.
	Source *SourceSpec
	// Template, when set (TemplateGolang), makes Data a template that is
	// rendered for each container; the caller checks the template's text.
	Template string
}

// SourceSpec is a new driver secret's source. Options are sealed like data.
type SourceSpec struct {
	Driver  string
	Options map[string]string
	Cache   bool
	Refresh time.Duration
	// Stored says the value was given at create and is put into the
	// source by the caller (the shell driver's store command); the store
	// keeps no copy of it.
	Stored bool
	// CommandsBy names the host whose root named the commands in Options
	// (the shell driver's lookup, store...); empty when Options name none.
	// The record's MAC covers it, so only a holder of the KEK can set it.
	CommandsBy string
}

// create is Create with the KEK this store holds now.
func (s *Store) create(spec Spec) (Secret, error) {
	if err := s.validSpec(spec); err != nil {
		return Secret{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return Secret{}, ErrLocked
	}
	id, err := newID()
	if err != nil {
		return Secret{}, err
	}
	now := s.now()
	r := record{Kind: s.kind.recordKind(), ID: id, Name: spec.Name, Labels: spec.Labels, CreatedAt: now, UpdatedAt: now, Template: spec.Template}
	if len(spec.Data) > 0 {
		env, err := envelope.SealEnvelope(s.kek, spec.Data, aad(s.kind.recordKind(), id, spec.Name, 1))
		if err != nil {
			return Secret{}, err
		}
		r.Versions = []versionRecord{{Version: 1, CreatedAt: now, Envelope: env}}
	}
	if src := spec.Source; src != nil {
		if r.Source, err = s.sealSource(src, id, spec.Name); err != nil {
			return Secret{}, err
		}
	}
	err = s.updateTx(func(tx Tx) error {
		if err := s.kekCurrent(tx); err != nil {
			return err
		}
		key := s.kind.indexKey(spec.Name)
		if v, err := tx.Get("names", key); err != nil {
			return err
		} else if v != nil {
			return Errorf(ErrExists, "%s %s already exists", s.kind, spec.Name)
		}
		if r.Index, err = nextIndex(tx); err != nil {
			return err
		}
		if err := tx.Put("names", key, []byte(id)); err != nil {
			return err
		}
		return putRecord(tx, &r, s.macKey)
	})
	if err != nil {
		return Secret{}, err
	}
	return r.secret(), nil
}

// validSpec refuses a spec that cannot make a secret (or config) of this
// store's kind.
func (s *Store) validSpec(spec Spec) error {
	if err := ValidateName(spec.Name); err != nil {
		return err
	}
	if err := ValidateLabels(spec.Labels); err != nil {
		return err
	}
	switch {
	case spec.Source != nil && s.kind != KindSecret:
		return Errorf(ErrInvalid, "a %s takes no secret driver: give its data", s.kind)
	case spec.Source != nil && spec.Template != "":
		return Errorf(ErrInvalid, "a driver secret cannot be a template: its value comes from the driver")
	case spec.Template != "" && spec.Template != TemplateGolang:
		return Errorf(ErrInvalid, "unknown template driver %q: the only one is %s", spec.Template, TemplateGolang)
	case spec.Source != nil && len(spec.Data) > 0:
		return Errorf(ErrInvalid, "a driver secret keeps no data in the store")
	case spec.Source != nil && spec.Source.Driver == "":
		return Errorf(ErrInvalid, "a driver secret needs a driver name")
	}
	if spec.Source == nil {
		return s.kind.ValidateData(spec.Data)
	}
	return nil
}

// sealSource is the stored form of a new driver secret's source, its
// options sealed under the KEK; s.mu is held.
func (s *Store) sealSource(src *SourceSpec, id, name string) (*sourceRecord, error) {
	out := &sourceRecord{Driver: src.Driver, Cache: src.Cache, Refresh: src.Refresh, Stored: src.Stored, CommandsBy: src.CommandsBy}
	if len(src.Options) == 0 {
		return out, nil
	}
	out.Keys = sortedKeys(src.Options)
	plain, err := json.Marshal(src.Options)
	if err != nil {
		return nil, err
	}
	env, err := envelope.SealEnvelope(s.kek, plain, optionsAAD(id, name))
	clear(plain)
	if err != nil {
		return nil, err
	}
	out.Options = &env
	return out, nil
}

// sortedKeys lists m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// SourceOptions decrypts a driver secret's options, for the driver that
// fetches its value. They may hold credentials: never log them.
func (s *Store) SourceOptions(ref string) (map[string]string, Secret, error) {
	defer s.hw.flush()
	return retryKEKOpts(s, ref)
}

func retryKEKOpts(s *Store, ref string) (map[string]string, Secret, error) {
	type out struct {
		opts map[string]string
		sec  Secret
	}
	o, err := retryKEK(s, func() (out, error) {
		opts, sec, err := s.sourceOptions(ref)
		return out{opts, sec}, err
	})
	return o.opts, o.sec, err
}

func (s *Store) sourceOptions(ref string) (map[string]string, Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return nil, Secret{}, ErrLocked
	}
	r, err := s.find(func(tx Tx) (*record, error) { return s.resolve(tx, ref) })
	if err != nil {
		return nil, Secret{}, err
	}
	if r.Source == nil {
		return nil, Secret{}, Errorf(ErrInvalid, "secret '%s' has no driver", r.Name)
	}
	opts := map[string]string{}
	if r.Source.Options != nil {
		plain, err := envelope.OpenEnvelope(s.kek, *r.Source.Options, optionsAAD(r.ID, r.Name))
		if err != nil {
			return nil, Secret{}, Errorf(ErrCorrupt, "the driver options of secret '%s' do not decrypt: the store record was altered or moved", r.Name)
		}
		err = json.Unmarshal(plain, &opts)
		clear(plain)
		if err != nil {
			return nil, Secret{}, Errorf(ErrCorrupt, "the driver options of secret '%s' are not readable", r.Name)
		}
	}
	return opts, r.secret(), nil
}

// Get returns the metadata of a secret (or config) by ID, name or unique ID
// prefix.
func (s *Store) Get(ref string) (Secret, error) {
	defer s.hw.flush()
	return retryStale(s, func() (Secret, error) { return s.get(ref) })
}

func (s *Store) get(ref string) (Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out Secret
	err := s.view(func(tx Tx) error {
		r, err := s.resolve(tx, ref)
		if err == nil {
			out = r.secret()
		}
		return err
	})
	return out, err
}

// GetNames returns the metadata of the secrets (or configs) named exactly
// names, in order, from one read transaction: a Mount checks with it that
// the files filled before it are still current, and its container's
// start waits for that. It reads through List's cache, so a record
// unchanged since it was last read is neither decoded nor authenticated
// again; its high-water mark is checked every time. A name not found is
// ErrNotFound.
func (s *Store) GetNames(names []string) ([]Secret, error) {
	defer s.hw.flush()
	return retryStale(s, func() ([]Secret, error) {
		s.mu.RLock()
		defer s.mu.RUnlock()
		out := make([]Secret, 0, len(names))
		err := s.view(func(tx Tx) error {
			check := func(r *record, verified bool) error { return s.checkListed(r, verified, sinceOf(tx)) }
			for _, name := range names {
				r, err := s.byNameListed(tx, name, check)
				if err != nil {
					return err
				}
				out = append(out, secretCopy(r))
			}
			return nil
		})
		return out, err
	})
}

// byNameListed is byName through List's cache: the record's metadata, not
// to be modified, and ErrNotFound for a name not found.
func (s *Store) byNameListed(tx Tx, name string, check func(r *record, verified bool) error) (*record, error) {
	id, err := s.nameIndex(tx, name)
	if err != nil {
		return nil, err
	}
	if id == "" {
		return nil, Errorf(ErrNotFound, "%s '%s' not found", s.kind, name)
	}
	v, err := tx.Get("secrets", id)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, missingRecord(name, id)
	}
	r, err := s.list.lookup(id, v, nil, s.macKey, check)
	switch {
	case err != nil:
		return nil, err
	case r.ID != id:
		return nil, fmt.Errorf("%w: secret %s: record does not match its key", ErrCorrupt, id)
	}
	if err := s.namedAs(r, name); err != nil {
		return nil, err
	}
	return r, nil
}

// Filter selects secrets in List; empty fields match everything. Within a
// field any value may match; across fields all must, as in the Docker API.
type Filter struct {
	Names        []string // exact names (the API's "names" filter)
	NamePrefixes []string // the API's "name" filter, a prefix as in Swarm
	IDPrefixes   []string
	Labels       []string // "key" or "key=value"
	// FromSource keeps only the secrets a mount asks their secret driver
	// for (not pinned, not refreshed into the store): a resync needs
	// those few, not a copy of every secret's metadata.
	FromSource bool
}

// All reports whether f selects every secret.
func (f Filter) All() bool {
	return len(f.Names)+len(f.NamePrefixes)+len(f.IDPrefixes)+len(f.Labels) == 0 && !f.FromSource
}

// List returns the secrets (or configs) that match f, sorted by name.
func (s *Store) List(f Filter) ([]Secret, error) {
	defer s.hw.flush()
	return retryStale(s, func() ([]Secret, error) { return s.listSecrets(f) })
}

func (s *Store) listSecrets(f Filter) ([]Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []Secret
	seen := map[string]listEntry{}
	err := s.view(func(tx Tx) error {
		check := func(r *record, verified bool) error { return s.checkListed(r, verified, sinceOf(tx)) }
		return tx.ForEach("secrets", func(k string, v []byte) error {
			r, err := s.list.lookup(k, v, seen, s.macKey, check)
			if err != nil {
				return err
			}
			if r.ID != k {
				return fmt.Errorf("%w: secret %s: record does not match its key", ErrCorrupt, k)
			}
			if r.kind() == s.kind && f.match(r) {
				out = append(out, secretCopy(r))
			}
			return nil
		})
	})
	if err == nil {
		s.list.replace(seen)
	}
	slices.SortFunc(out, func(a, b Secret) int { return strings.Compare(a.Name, b.Name) })
	return out, err
}

func (f Filter) match(r *record) bool {
	if f.FromSource && (r.Source == nil || r.Source.Refresh != 0) {
		return false
	}
	if len(f.Names) > 0 && !slices.Contains(f.Names, r.Name) {
		return false
	}
	if len(f.NamePrefixes) > 0 && !slices.ContainsFunc(f.NamePrefixes, func(n string) bool { return strings.HasPrefix(r.Name, n) }) {
		return false
	}
	if len(f.IDPrefixes) > 0 && !slices.ContainsFunc(f.IDPrefixes, func(p string) bool { return strings.HasPrefix(r.ID, p) }) {
		return false
	}
	for _, l := range f.Labels {
		k, v, hasValue := strings.Cut(l, "=")
		got, ok := r.Labels[k]
		if !ok || (hasValue && got != v) {
			return false
		}
	}
	return true
}

// reveal is Reveal with the KEK this store holds now.
func (s *Store) reveal(ref string, version int) ([]byte, Secret, error) {
	return s.revealWith(func(tx Tx) (*record, error) { return s.resolve(tx, ref) }, version)
}

// revealWith decrypts a version of the record find returns.
func (s *Store) revealWith(find func(Tx) (*record, error), version int) ([]byte, Secret, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return nil, Secret{}, ErrLocked
	}
	r, err := s.find(find)
	if err != nil {
		return nil, Secret{}, err
	}
	if len(r.Versions) == 0 {
		// The secret comes back with the error: the caller asks its source.
		return nil, r.secret(), Errorf(ErrNotFound, "secret '%s' has no stored value: secret driver %q gives its value when a container mounts it", r.Name, r.Source.Driver)
	}
	v := r.Versions[len(r.Versions)-1]
	if version != 0 {
		i := slices.IndexFunc(r.Versions, func(x versionRecord) bool { return x.Version == version })
		if i < 0 {
			return nil, Secret{}, Errorf(ErrNotFound, "%s '%s' has no version %d (kept: %s)", r.kind(), r.Name, version, keptVersions(r))
		}
		v = r.Versions[i]
	}
	data, err := envelope.OpenEnvelope(s.kek, v.Envelope, aad(r.Kind, r.ID, r.Name, v.Version))
	if err != nil {
		return nil, Secret{}, Errorf(ErrCorrupt, "%s '%s' version %d does not decrypt: the store record was altered or moved", r.kind(), r.Name, v.Version)
	}
	return data, r.secret(), nil
}

// find returns the record fn finds in a read transaction.
func (s *Store) find(fn func(Tx) (*record, error)) (r *record, err error) {
	err = s.view(func(tx Tx) error {
		r, err = fn(tx)
		return err
	})
	return r, err
}

// RevealName is Reveal for a secret named exactly name: declarations name
// secrets, and an ID or ID prefix there would escape the in-use checks,
// which match by name.
func (s *Store) RevealName(name string, version int) ([]byte, Secret, error) {
	find := func(tx Tx) (*record, error) {
		r, err := s.byName(tx, name)
		if err == nil && r == nil {
			err = Errorf(ErrNotFound, "%s '%s' not found", s.kind, name)
		}
		return r, err
	}
	defer s.hw.flush()
	gen := s.generation()
	data, sec, err := s.revealWith(find, version)
	if errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrRollback) {
		if moved, _ := s.reloadKEK(); moved || s.generation() != gen {
			return s.revealWith(find, version)
		}
	}
	return data, sec, err
}

// Verify decrypts every version of every secret and config, whichever
// view it is called on, and reports the ones that fail.
func (s *Store) Verify() error {
	var errs []error
	for _, k := range []Kind{KindSecret, KindConfig} {
		view := s.Of(k)
		list, err := view.List(Filter{})
		if err != nil {
			return err
		}
		for _, sec := range list {
			for _, v := range sec.Versions {
				data, _, err := view.Reveal(sec.ID, v.Version)
				clear(data)
				if err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func keptVersions(r *record) string {
	var vs []string
	for _, v := range r.Versions {
		vs = append(vs, strconv.Itoa(v.Version))
	}
	return strings.Join(vs, ", ")
}

// resolve finds a record of this view's kind the way the Docker Engine
// resolves a secret or config reference: full ID, then exact name, then
// unique ID prefix.
func (s *Store) resolve(tx Tx, ref string) (*record, error) {
	if ref == "" {
		return nil, Errorf(ErrInvalid, "%s name or ID must not be empty", s.kind)
	}
	if err := s.prefetch(tx, ref, Key{"secrets", ref}); err != nil {
		return nil, err
	}
	if r, err := s.getRecord(tx, ref); err != nil || (r != nil && r.kind() == s.kind) {
		return r, err
	}
	if r, err := s.byName(tx, ref); r != nil || err != nil {
		return r, err
	}
	var matches []string
	if err := tx.ForEach("secrets", func(k string, v []byte) error {
		if !strings.HasPrefix(k, ref) {
			return nil
		}
		var m struct {
			Kind string `json:"kind,omitempty"`
		}
		// A record that does not decode is reported by getRecord if it
		// is the one match; it is not silently of another kind.
		if json.Unmarshal(v, &m) != nil || kindOf(m.Kind) == s.kind {
			matches = append(matches, k)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	switch len(matches) {
	case 0:
		return nil, Errorf(ErrNotFound, "%s '%s' not found", s.kind, ref)
	case 1:
		r, err := s.getRecord(tx, matches[0])
		if err == nil && r.kind() != s.kind {
			err = fmt.Errorf("%w: %s %s: record does not match its key", ErrCorrupt, s.kind, matches[0])
		}
		return r, err
	default:
		return nil, Errorf(ErrInvalid, "%s %s is ambiguous (%d matches found)", s.kind, ref, len(matches))
	}
}

// byName finds the record named name, or nil. The name index is not
// authenticated on its own: the record it points at must carry the name,
// or a pointer moved in the store would hand out another secret's data.
func (s *Store) byName(tx Tx, name string) (*record, error) {
	id, err := s.nameIndex(tx, name)
	if err != nil || id == "" {
		return nil, err
	}
	r, err := s.getRecord(tx, id)
	switch {
	case err != nil:
		return nil, err
	case r == nil:
		return nil, missingRecord(name, id)
	}
	if err := s.namedAs(r, name); err != nil {
		return nil, err
	}
	return r, nil
}

// nameIndex returns the ID the name index holds for name, "" for none.
func (s *Store) nameIndex(tx Tx, name string) (string, error) {
	if err := s.prefetch(tx, name); err != nil {
		return "", err
	}
	id, err := tx.Get("names", s.kind.indexKey(name))
	return string(id), err
}

// namedAs refuses a record the name index led to that is not named name,
// or not of this view's kind.
func (s *Store) namedAs(r *record, name string) error {
	if r.Name != name || r.kind() != s.kind {
		return Errorf(ErrCorrupt, "%s '%s': the store's name index points at %s %s, which is named '%s': the store was altered; refusing it", s.kind, name, r.kind(), r.ID, r.Name)
	}
	return nil
}

func missingRecord(name, id string) error {
	return fmt.Errorf("%w: name %s points at missing record %s", ErrCorrupt, name, id)
}

// prefetch has a backend that answers over the network fetch, in one
// round trip, the keys a lookup of name reads one after the other: the
// name index, the record it last pointed at (which it still does unless
// the name was removed and made again), and also.
func (s *Store) prefetch(tx Tx, name string, also ...Key) error {
	p, ok := unstamped(tx).(Prefetcher)
	if !ok {
		return nil
	}
	index := s.kind.indexKey(name)
	keys := append(also, Key{"names", index})
	if id, ok := p.Guess("names", index); ok && len(id) > 0 {
		keys = append(keys, Key{"secrets", string(id)})
	}
	return p.Prefetch(keys...)
}

// getRecord reads and authenticates the record with this ID, or nil.
func (s *Store) getRecord(tx Tx, id string) (*record, error) {
	v, err := tx.Get("secrets", id)
	if err != nil || v == nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: secret %s: %v", ErrCorrupt, id, err)
	}
	if r.ID != id || !r.valid() {
		return nil, fmt.Errorf("%w: secret %s: record does not match its key", ErrCorrupt, id)
	}
	if err := s.checkRecord(&r, sinceOf(tx)); err != nil {
		return nil, err
	}
	return &r, nil
}

// putRecord stores r with its MAC under macKey.
func putRecord(tx Tx, r *record, macKey *envelope.Key) error {
	if macKey == nil {
		return ErrLocked
	}
	r.MAC = recordMAC(macKey, r)
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put("secrets", r.ID, v)
}

func nextIndex(tx Tx) (uint64, error) {
	v, err := tx.Get("meta", "index")
	if err != nil {
		return 0, err
	}
	var n uint64
	if v != nil {
		if n, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return 0, fmt.Errorf("%w: index: %v", ErrCorrupt, err)
		}
	}
	n++
	return n, tx.Put("meta", "index", []byte(strconv.FormatUint(n, 10)))
}
