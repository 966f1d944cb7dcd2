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
	claims, err := c.claims(ctx, sec)
	if err != nil {
		return nil, err
	}
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
	claims, err := c.claims(ctx, sec)
	if err != nil {
		return nil, err
	}
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

// claim is one container's use of a secret; version 0 follows the current.
type claim struct {
	container string
	version   int
}

// claims lists every use of sec by the task table and, through the engine,
// by existing containers' volumes.
func (c *Controller) claims(ctx context.Context, sec store.Secret) ([]claim, error) {
	var list []container.Summary
	if c.cfg.Engine != nil {
		lctx, cancel := context.WithTimeout(ctx, engineTimeout)
		defer cancel()
		var err error
		if list, err = c.cfg.Engine.ContainerList(lctx, container.ListOptions{All: true}); err != nil {
			return nil, errdefs.Errorf(errdefs.ErrUnavailable, "cannot tell whether secret '%s' is in use: the Docker Engine did not answer: %v", sec.Name, err)
		}
	}
	var out []claim
	for _, s := range c.taskSnapshots(list) {
		for _, e := range s.entries {
			if e.Source == sec.Name {
				out = append(out, claim{s.label(), e.Version})
			}
		}
	}
	for _, s := range list {
		for _, entries := range c.declarations(s) {
			for _, e := range entries {
				if e.Source == sec.Name {
					out = append(out, claim{summaryName(s), e.Version})
				}
			}
		}
	}
	return out, nil
}

// taskSnapshots copies the task table. A task whose container's name no
// event has brought yet (a start under way) takes it from list: by its
// container ID, or, with none, from the volume's only user, so in-use
// answers name it.
func (c *Controller) taskSnapshots(list []container.Summary) []taskView {
	users := map[string][]container.Summary{}
	byID := map[string]container.Summary{}
	for _, s := range list {
		byID[s.ID] = s
		for _, m := range s.Mounts {
			if c.ourMount(m) {
				users[m.Name] = append(users[m.Name], s)
			}
		}
	}
	out := c.tasks.views()
	for i, s := range out {
		switch {
		case s.name != "":
		case s.containerID != "":
			if u, ok := byID[s.containerID]; ok {
				out[i] = s.named(s.containerID, summaryName(u))
			}
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
func (c *Controller) declarations(s container.Summary) [][]declaration.Entry {
	var out [][]declaration.Entry
	for _, m := range s.Mounts {
		if !c.ourMount(m) {
			continue
		}
		var entries []declaration.Entry
		var err error
		if v, ok := c.vols.get(m.Name); ok && v.Bound() {
			entries, err = v.Entries()
		} else {
			entries, _, err = c.labelShare(s, m.Name)
		}
		if err == nil && len(entries) > 0 {
			out = append(out, entries)
		}
	}
	return out
}
