package controller

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/templating"
	"github.com/secretd/secretd/tmpfs"
)

// Sources fetches the value of secrets created with a driver, for one
// container. The caller wipes the value once it is written.
type Sources interface {
	// Fetch returns sec's value for container who (zero when unknown),
	// from its source or, for a cached secret whose source failed, from
	// the cache. The error names the secret and the source's failure.
	Fetch(ctx context.Context, sec store.Secret, who source.Container) ([]byte, error)
}

// contents reads what a mount holds: each entry's value, from the store
// or from its secret's source.
type contents struct {
	store   *store.Store
	sources Sources
	// maxSize caps the plaintext bytes of one mount; zero means no cap.
	maxSize int64
}

// fromSource reports whether an entry's value must be asked from the
// secret's source rather than read from the store: a driver secret not
// pinned to a version and not kept current by a refresher (whose versions
// the store holds and rotations push).
func fromSource(sec store.Secret, version int) bool {
	return sec.Source != nil && sec.Source.Refresh == 0 && version == 0
}

// reveal returns an entry's value and the secret (or config) it belongs
// to: from the store, or for a driver secret from the file already mounted
// (mounted is the task's directory when its files are being rewritten) or
// else from the secret's source. A container keeps the value its start
// fetched: a rotation of another of its secrets neither asks the source
// again nor replaces a DoNotReuse value. A template's value is its text.
func (s *contents) reveal(ctx context.Context, e declaration.Entry, in contentInput) ([]byte, store.Secret, error) {
	if o := in.next; o.follows(e) {
		// CheckUpdate: the data an update would store, as the next version.
		sec := o.sec
		sec.Current++
		return bytes.Clone(o.data), sec, nil
	}
	d, sec, err := s.view(e.Kind).RevealName(e.Source, e.Version)
	if sec.Source == nil || !fromSource(sec, e.Version) || (err != nil && !errors.Is(err, errdefs.ErrNotFound)) {
		return d, sec, err
	}
	clear(d)
	if in.mounted != "" {
		if d, err := readMounted(in.mounted, e.Target); err == nil {
			return d, sec, nil
		}
		// Not mounted yet (a live grant, or read by a template): fetched
		// below.
	}
	if s.sources == nil {
		return nil, store.Secret{}, errdefs.Errorf(errdefs.ErrInvalid, "secret '%s' takes its value from secret driver %q, and this daemon has no secret drivers", e.Source, sec.Source.Driver)
	}
	d, err = s.sources.Fetch(ctx, sec, in.who())
	return d, sec, err
}

// knownContainer is a container already known, for a driver secret's source.
func knownContainer(who source.Container) func() source.Container {
	return func() source.Container { return who }
}

// boundContainer looks up, once and only when a driver secret asks, the
// container whose label bound the volume, so its source is told the
// container's name, image and labels. It reads dockerd's container list,
// which answers during a start; an inspect would wait on the container's
// lock, which the start holds. The hostname is the one learned at the
// container's create event, if that lookup answered before this Mount. A
// failed lookup leaves the fields empty.
func (b *binding) boundContainer(ctx context.Context, owner *container.Summary, id string) func() source.Container {
	return sync.OnceValue(func() source.Container {
		if owner != nil {
			return b.sourceContainer(*owner)
		}
		if id == "" || b.engine == nil {
			return source.Container{}
		}
		lctx, cancel := context.WithTimeout(ctx, engineTimeout)
		defer cancel()
		list, err := b.engine.ContainerList(lctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
		if err != nil || len(list) != 1 {
			return source.Container{ID: id, Hostname: b.hostnames.get(id)}
		}
		return b.sourceContainer(list[0])
	})
}

// sourceContainer is what a secret driver is told of a listed container:
// the image as given at create, as Swarm tells the task's.
func (b *binding) sourceContainer(s container.Summary) source.Container {
	o := identityOf(s)
	return source.Container{ID: o.ID, Name: o.Name, Image: s.Image, Labels: o.Labels, Hostname: b.hostnames.get(o.ID)}
}

// readMounted reads the file a mount holds at target; a target that is
// not a plain relative path is not read.
func readMounted(dir, target string) ([]byte, error) {
	if !filepath.IsLocal(target) {
		return nil, os.ErrNotExist
	}
	return os.ReadFile(filepath.Join(dir, target))
}

// contentInput is what a mount's files are made from, beside its entries.
type contentInput struct {
	// scope is what the mount's templates read, by target; nil means the
	// entries themselves.
	scope []declaration.Entry
	// who is the container, for a driver secret's source.
	who func() source.Container
	// identity is the container's template context, asked only when a
	// template reads it; nil refuses such a template.
	identity func() (templating.Identity, error)
	// mounted is the task's directory when its files are rewritten (see
	// reveal).
	mounted string
	// next, when set, is read in place of the current version of one
	// secret or config: the data an update would store (CheckUpdate).
	next *nextVersion
	// rotated, when set, is the current version of one secret or config
	// as a rotation decrypted it once for all its mounts: entries that
	// follow it take it without a store read (a template's reads still
	// read the store, as the version guard of task.rewrite sees entries
	// only).
	rotated *nextVersion
}

// nextVersion is the data an update of sec would store, or (as a
// rotation's value) the data of sec's current version.
type nextVersion struct {
	kind declaration.Kind
	sec  store.Secret
	data []byte
}

// follows reports whether entry e follows the current version of o's
// secret or config.
func (o *nextVersion) follows(e declaration.Entry) bool {
	return o != nil && e.Version == 0 && e.Kind == o.kind && e.Source == o.sec.Name
}

// wipe zeroes the value once every mount has it.
func (o *nextVersion) wipe() {
	if o != nil {
		clear(o.data)
	}
}

// revealOnce decrypts the current version of a secret or config a
// rotation pushes, for all its mounts at once; nil when mounts must read
// it each on their own: a driver secret's value is each container's, and
// a failure is each mount's to report.
func (s *contents) revealOnce(sec store.Secret) *nextVersion {
	kind := declKind(sec.Kind)
	// Inside the store's update hook: the announced version, from the
	// record the hook was called for (a watch event's), with no read.
	if sec.Source == nil {
		if d, ok := s.view(kind).Announced(sec); ok {
			return &nextVersion{kind: kind, sec: sec, data: d}
		}
	}
	d, got, err := s.view(kind).RevealName(sec.Name, 0)
	if err != nil || got.Source != nil || got.ID != sec.ID {
		clear(d)
		return nil
	}
	return &nextVersion{kind: kind, sec: got, data: d}
}

// revealed is one version's value as a mount read it.
type revealed struct {
	data     []byte
	version  int
	id       string
	template bool
	sec      store.Secret
}

// files decrypts every entry, or fetches it from its source for container
// in.who (see reveal), and renders the templates. Each secret is revealed
// once even when it is declared at several targets or read by several
// templates.
func (s *contents) files(ctx context.Context, entries []declaration.Entry, in contentInput) (content, error) {
	type key struct {
		kind    declaration.Kind
		name    string
		version int
	}
	plain := map[key]revealed{}
	used := map[key]bool{}
	wipe := func() {
		for _, b := range plain {
			clear(b.data)
		}
	}
	get := func(e declaration.Entry) (revealed, error) {
		k := key{e.Kind, e.Source, e.Version}
		if r, ok := plain[k]; ok {
			return r, nil
		}
		d, sec, err := s.reveal(ctx, e, in)
		if err != nil {
			return revealed{}, err
		}
		r := revealed{data: d, version: e.Version, id: sec.ID, template: sec.Template != "", sec: sec}
		if e.Version == 0 {
			r.version = sec.Current
		}
		plain[k] = r
		return r, nil
	}
	var total int64
	var files []tmpfs.File
	c := content{versions: make([]int, len(entries)), ids: make([]string, len(entries)), reads: make([][]readRef, len(entries)), rendered: make([]bool, len(entries))}
	for i, e := range entries {
		if o := in.rotated; o.follows(e) && plain[key{e.Kind, e.Source, 0}].data == nil && in.next == nil {
			plain[key{e.Kind, e.Source, 0}] = revealed{data: bytes.Clone(o.data), version: o.sec.Current, id: o.sec.ID, template: o.sec.Template != "", sec: o.sec}
		}
		r, err := get(e)
		if err != nil {
			wipe()
			wipeFiles(files)
			return content{}, err
		}
		c.versions[i], c.ids[i] = r.version, r.id
		data := r.data
		if r.template {
			out, reads, err := s.render(e, in, get)
			if err != nil {
				wipe()
				wipeFiles(files)
				return content{}, err
			}
			data, c.reads[i], c.rendered[i] = out, reads, true
		}
		// Every file counts, a secret at two targets twice: the cap
		// bounds what one Mount puts in memory.
		if total += int64(len(data)); s.maxSize > 0 && total > s.maxSize {
			if r.template {
				clear(data)
			}
			wipe()
			wipeFiles(files)
			return content{}, errdefs.Errorf(errdefs.ErrInvalid, "the secrets declared for this mount hold more than %d bytes (secretd daemon --max-mount-size): declare fewer or smaller secrets", s.maxSize)
		}
		if !r.template {
			// A file shares the value with the others of its secret; the
			// caller wipes them all.
			used[key{e.Kind, e.Source, e.Version}] = true
		}
		files = append(files, tmpfs.File{Path: e.Target, Data: data, UID: e.UID, GID: e.GID, Mode: e.Mode})
	}
	// What only templates read is wiped here; the rest goes with the files.
	for k, b := range plain {
		if !used[k] {
			clear(b.data)
		}
	}
	c.files = files
	return c, nil
}

// grantable checks that a grant names a secret by its name, and a kept
// version when it pins one.
func (s *contents) grantable(e declaration.Entry) error {
	sec, err := s.view(e.Kind).Get(e.Source)
	if err == nil && sec.Name != e.Source {
		// Mounts resolve declarations by name only: an ID or ID prefix
		// would be saved here and then never mount.
		err = errdefs.Errorf(errdefs.ErrNotFound, "%s '%s' not found", e.Kind.Noun(), e.Source)
	}
	if err != nil {
		return err
	}
	if e.Version != 0 && !sec.HasVersion(e.Version) {
		return errdefs.Errorf(errdefs.ErrNotFound, "%s '%s' has no version %d", e.Kind.Noun(), e.Source, e.Version)
	}
	return nil
}

// view is the store's view of an entry's kind.
func (s *contents) view(k declaration.Kind) *store.Store {
	return s.store.Of(storeKind(k))
}

// storeKind is the store's kind of a declaration's.
func storeKind(k declaration.Kind) store.Kind {
	if k == declaration.Config {
		return store.KindConfig
	}
	return store.KindSecret
}
