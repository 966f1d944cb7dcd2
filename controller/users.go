package controller

import (
	"context"
	"slices"
	"sort"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
)

// Users names the containers that use the secret: every existing container
// whose volumes declare it, running or not (a stopped one needs it to start
// again), and every mount in the task table. It asks the engine with a
// deadline, and must be called outside any store transaction.
func (c *Controller) Users(ctx context.Context, sec store.Secret) ([]string, error) {
	list, err := c.binding.listAll(ctx)
	if err != nil {
		return nil, inUseUnknown(sec, err)
	}
	claims := claimsOf(declKind(sec.Kind), sec.Name, namedViews(c.tasks.views(), list, c.binding.ourMount), list, c.binding.declarations)
	seen := map[string]bool{}
	for _, cl := range claims {
		seen[cl.container] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Pins maps each version of the secret that a container pins to the names
// of those containers; like Users, it asks the engine with a deadline.
func (c *Controller) Pins(ctx context.Context, sec store.Secret) (map[int][]string, error) {
	list, err := c.binding.listAll(ctx)
	if err != nil {
		return nil, inUseUnknown(sec, err)
	}
	claims := claimsOf(declKind(sec.Kind), sec.Name, namedViews(c.tasks.views(), list, c.binding.ourMount), list, c.binding.declarations)
	out := map[int][]string{}
	for _, cl := range claims {
		if cl.version != 0 && !slices.Contains(out[cl.version], cl.container) {
			out[cl.version] = append(out[cl.version], cl.container)
		}
	}
	for _, names := range out {
		sort.Strings(names)
	}
	return out, nil
}

// inUseUnknown is the error of an in-use answer the engine did not give.
func inUseUnknown(sec store.Secret, err error) error {
	return errdefs.Errorf(errdefs.ErrUnavailable, "cannot tell whether %s '%s' is in use: the Docker Engine did not answer: %v", sec.Kind, sec.Name, err)
}

// claim is one container's use of a secret; version 0 follows the current.
type claim struct {
	container string
	version   int
}

// claimsOf lists every use of the secret or config kind/name: by the
// mounts in the task table (views) and by the volumes of every container
// the engine listed, as declarations says they declare. What a template
// reads is declared by the same container (its scope), so it is counted
// there.
func claimsOf(kind declaration.Kind, name string, views []taskView, list []container.Summary, declarations func(container.Summary) [][]declaration.Entry) []claim {
	var out []claim
	for _, s := range views {
		for _, e := range s.entries {
			if e.Kind == kind && e.Source == name {
				out = append(out, claim{s.label(), e.Version})
			}
		}
	}
	for _, s := range list {
		for _, entries := range declarations(s) {
			for _, e := range entries {
				if e.Kind == kind && e.Source == name {
					out = append(out, claim{summaryName(s), e.Version})
				}
			}
		}
	}
	return out
}

// listAll lists every container, with a deadline; none without an engine.
func (b *binding) listAll(ctx context.Context) ([]container.Summary, error) {
	if b.engine == nil {
		return nil, nil
	}
	lctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	return b.engine.ContainerList(lctx, container.ListOptions{All: true})
}

// namedViews returns the views of the task table with their containers
// named: a task whose container's name no event has brought yet (a start
// under way) takes it from list, by its container ID, or, with none, from
// the volume's only user, so in-use answers name it. A shared mount
// (Podman's) gives a view for each container that reads it: its members,
// or, while no event or resync named them, its volume's running users.
func namedViews(views []taskView, list []container.Summary, ours func(container.MountPoint) bool) []taskView {
	users := map[string][]container.Summary{}
	byID := map[string]container.Summary{}
	for _, s := range list {
		byID[s.ID] = s
		for _, m := range s.Mounts {
			if ours(m) {
				users[m.Name] = append(users[m.Name], s)
			}
		}
	}
	var out []taskView
	for _, s := range views {
		if s.shared && len(s.members) == 0 {
			s = s.withMembers(membersOf(s.volume, users[s.volume]))
		}
		out = append(out, s.containers()...)
	}
	for i, s := range out {
		switch {
		case s.name != "":
		case s.containerID != "":
			if u, ok := byID[s.containerID]; ok {
				out[i] = s.named(s.containerID, summaryName(u))
			}
		case s.shared:
			// No container of its volume runs: it stays unnamed.
		case len(users[s.volume]) == 1:
			u := users[s.volume][0]
			out[i] = s.named(u.ID, summaryName(u))
		}
	}
	return out
}

// declarations returns what each volume of this driver that a container
// mounts holds: the volume's bound declaration with its live grants and
// revokes, or, for a volume not bound yet, the container's label, which
// it will bind to.
func (b *binding) declarations(s container.Summary) [][]declaration.Entry {
	var out [][]declaration.Entry
	for _, m := range s.Mounts {
		if !b.ourMount(m) {
			continue
		}
		var entries []declaration.Entry
		var err error
		if v, ok := b.vols.get(m.Name); ok && v.Bound() {
			entries, err = v.Entries()
		} else {
			entries, _, _, err = b.labelShare(s, m.Name)
		}
		if err == nil && len(entries) > 0 {
			out = append(out, entries)
		}
	}
	return out
}
