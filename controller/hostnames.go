package controller

import (
	"context"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/store"
)

// maxHostnames bounds the hostnames kept: one entry per container that
// declares secrets, dropped at its destroy; a host with more such
// containers than this loses the oldest guesses, not memory.
const maxHostnames = 4096

// hostnames keeps the hostname of containers that declare secrets, by
// container ID, for secret-driver plugins (Swarm sends ServiceHostname).
// The container list a Mount reads does not carry it, and an inspect
// during a start would wait on the container's lock, which the start
// holds while it mounts: so it is learned off the start path, by an
// inspect at the container's create event.
type hostnames struct {
	mu    sync.Mutex
	names map[string]string
	order []string // insertion order, to drop the oldest when full
}

func (h *hostnames) get(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names[id]
}

func (h *hostnames) known(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.names[id]
	return ok
}

// keepOnly forgets the containers not in ids.
func (h *hostnames) keepOnly(ids map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	order := h.order[:0]
	for _, id := range h.order {
		if ids[id] {
			order = append(order, id)
		} else {
			delete(h.names, id)
		}
	}
	h.order = order
}

func (h *hostnames) set(id, hostname string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.names == nil {
		h.names = map[string]string{}
	}
	if _, ok := h.names[id]; !ok {
		for len(h.names) >= maxHostnames && len(h.order) > 0 {
			delete(h.names, h.order[0])
			h.order = h.order[1:]
		}
		h.order = append(h.order, id)
	}
	h.names[id] = hostname
}

func (h *hostnames) drop(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.names[id]; !ok {
		return
	}
	delete(h.names, id)
	for i, o := range h.order {
		if o == id {
			h.order = append(h.order[:i], h.order[i+1:]...)
			break
		}
	}
}

// declaresSourced reports whether a container's label names a secret whose
// value a source gives at Mount: only those need its hostname, and the
// inspect that learns it contends with the container's start for its lock.
func (b *binding) declaresSourced(decl string) bool {
	return b.declaresSourcedBy(decl, func(e declaration.Entry) bool {
		sec, err := b.store.Get(e.Source)
		return err == nil && fromSource(sec, e.Version)
	})
}

func (b *binding) declaresSourcedBy(decl string, sourced func(declaration.Entry) bool) bool {
	if decl == "" || b.sources == nil {
		return false
	}
	entries, err := declaration.ParseLabel(decl)
	if err != nil {
		return false // refused at Mount, with the parse error
	}
	return slices.ContainsFunc(entries, sourced)
}

// sourcedSecrets names the secrets a source gives at Mount, from one list
// of the store: a resync checks thousands of labels, and a Get for each
// entry of each cost more than the rest of the resync. Empty when the list
// fails: nothing is learned then, as when the engine does not answer.
func (b *binding) sourcedSecrets() map[string]bool {
	list, err := b.store.List(store.Filter{FromSource: true})
	if err != nil {
		b.log.Warn("resync: secrets not listed: hostnames of containers created while secretd was away are not learned", "err", err)
		return map[string]bool{}
	}
	names := map[string]bool{}
	for _, sec := range list {
		if fromSource(sec, 0) {
			names[sec.Name] = true
		}
	}
	return names
}

// hostnameLookups bounds the inspects under way at once: a restart on a
// host with thousands of such containers must not fire them all at dockerd
// together.
const hostnameLookups = 4

// learnHostnames inspects containers that declare secrets (new, or created
// while secretd was away and found by a resync), behind the caller and a
// few at a time, and keeps their hostnames for the secret drivers of their
// Mounts. When a container's start took its lock first, the inspect
// answers after the start, and only later Mounts (a restart, a live grant)
// send the hostname.
func (b *binding) learnHostnames(ctx context.Context, ids ...string) {
	if len(ids) == 0 || b.engine == nil || b.sources == nil {
		return
	}
	b.learning.Add(1)
	go func() {
		defer b.learning.Done()
		var g errgroup.Group
		g.SetLimit(hostnameLookups)
		for _, id := range ids {
			g.Go(func() error { b.inspectHostname(ctx, id); return nil })
		}
		g.Wait()
	}()
}

func (b *binding) inspectHostname(ctx context.Context, id string) {
	ictx, cancel := context.WithTimeout(ctx, createLookupTimeout)
	defer cancel()
	ctr, err := b.engine.ContainerInspect(ictx, id)
	if err != nil || ctr.Config == nil {
		b.log.Debug("new container's hostname not learned: secret drivers get none", "container", shortID(id), "err", err)
		return
	}
	b.hostnames.set(id, ctr.Config.Hostname)
	b.log.Debug("container hostname learned", "container", shortID(id), "hostname", ctr.Config.Hostname)
}
