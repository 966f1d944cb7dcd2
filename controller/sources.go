package controller

import (
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
)

// Sources fetches the value of secrets created with a driver, for one
// container. The caller wipes the value once it is written.
type Sources interface {
	// Fetch returns sec's value for container who (zero when unknown),
	// from its source or, for a cached secret whose source failed, from
	// the cache. The error names the secret and the source's failure.
	Fetch(ctx context.Context, sec store.Secret, who source.Container) ([]byte, error)
}

// fromSource reports whether an entry's value must be asked from the
// secret's source rather than read from the store: a driver secret not
// pinned to a version and not kept current by a refresher (whose versions
// the store holds and rotations push).
func fromSource(sec store.Secret, version int) bool {
	return sec.Source != nil && sec.Source.Refresh == 0 && version == 0
}

// reveal returns an entry's value and the secret it belongs to: from the
// store, or for a driver secret from the file already mounted (mounted is
// the task's directory when its files are being rewritten) or else from the
// secret's source. A container keeps the value its start fetched: a
// rotation of another of its secrets neither asks the source again nor
// replaces a DoNotReuse value.
func (c *Controller) reveal(ctx context.Context, e declaration.Entry, who func() source.Container, mounted string) ([]byte, store.Secret, error) {
	d, sec, err := c.cfg.Store.RevealName(e.Source, e.Version)
	if sec.Source == nil || !fromSource(sec, e.Version) || (err != nil && !errors.Is(err, errdefs.ErrNotFound)) {
		return d, sec, err
	}
	clear(d)
	if mounted != "" {
		if d, err := readMounted(mounted, e.Target); err == nil {
			return d, sec, nil
		}
		// Not mounted yet (a live grant): fetched below.
	}
	if c.cfg.Sources == nil {
		return nil, store.Secret{}, errdefs.Errorf(errdefs.ErrInvalid, "secret '%s' takes its value from secret driver %q, and this daemon has no secret drivers", e.Source, sec.Source.Driver)
	}
	d, err = c.cfg.Sources.Fetch(ctx, sec, who())
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
func (c *Controller) boundContainer(ctx context.Context, owner *container.Summary, id string) func() source.Container {
	return sync.OnceValue(func() source.Container {
		if owner != nil {
			return c.sourceContainer(*owner)
		}
		if id == "" || c.cfg.Engine == nil {
			return source.Container{}
		}
		lctx, cancel := context.WithTimeout(ctx, engineTimeout)
		defer cancel()
		list, err := c.cfg.Engine.ContainerList(lctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
		if err != nil || len(list) != 1 {
			return source.Container{ID: id, Hostname: c.hostnames.get(id)}
		}
		return c.sourceContainer(list[0])
	})
}

// sourceContainer is what a secret driver is told of a listed container:
// the image as given at create, as Swarm tells the task's.
func (c *Controller) sourceContainer(s container.Summary) source.Container {
	o := identityOf(s)
	return source.Container{ID: o.ID, Name: o.Name, Image: s.Image, Labels: o.Labels, Hostname: c.hostnames.get(o.ID)}
}

// readMounted reads the file a mount holds at target; a target that is
// not a plain relative path is not read.
func readMounted(dir, target string) ([]byte, error) {
	if !filepath.IsLocal(target) {
		return nil, os.ErrNotExist
	}
	return os.ReadFile(filepath.Join(dir, target))
}
