package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/errdefs"
)

// defaultTarget is where a container without --volume gets its grants.
const defaultTarget = "/run/secrets"

// UpdateContainer grants (SecretAdd) and revokes (SecretRm, by secret name)
// secrets of a running or stopped container, live. A grant or revoke
// belongs to a volume: a revoke acts on the container's volumes that hold
// the secret, a grant on the volume at /run/secrets or the one named. A
// volume that other containers also use is refused unless Shared is set,
// since they see the change too. Running mounts of the volume are rewritten
// at once, and the change holds until the volume is removed.
func (c *Controller) UpdateContainer(ctx context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error) {
	if len(req.SecretAdd) == 0 && len(req.SecretRm) == 0 {
		return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "nothing to change: give --secret-add or --secret-rm")
	}
	list, s, err := c.findContainer(ctx, ref)
	if err != nil {
		return api.Task{}, err
	}
	name := summaryName(s)
	// The container's volumes of this driver, bound.
	var mine []Volume
	var dests []string
	for _, m := range s.Mounts {
		if !c.ourMount(m) {
			continue
		}
		if _, err := c.ensureVolume(m.Name); err != nil {
			return api.Task{}, err
		}
		v, _, err := c.bind(ctx, m.Name)
		if err != nil {
			return api.Task{}, err
		}
		mine = append(mine, v)
		dests = append(dests, m.Destination)
	}
	if len(mine) == 0 {
		return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "container %s has no %s volume: start it with one to manage its secrets", name, c.cfg.DriverName)
	}
	if req.Volume != "" && !slices.ContainsFunc(mine, func(v Volume) bool { return v.Name == req.Volume }) {
		return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "container %s does not mount volume %s", name, req.Volume)
	}
	next := map[string]*Volume{}
	edit := func(i int) *Volume {
		if v := next[mine[i].Name]; v != nil {
			return v
		}
		v := mine[i].clone()
		next[v.Name] = &v
		return &v
	}
	for _, src := range req.SecretRm {
		held := false
		for i, v := range mine {
			if req.Volume != "" && v.Name != req.Volume {
				continue
			}
			cur := v
			if w := next[v.Name]; w != nil {
				cur = *w
			}
			eff, err := cur.Entries()
			if err != nil {
				return api.Task{}, err
			}
			if !slices.ContainsFunc(eff, func(e declaration.Entry) bool { return e.Source == src }) {
				continue
			}
			held = true
			revoke(edit(i), src)
		}
		if !held {
			return api.Task{}, errdefs.Errorf(errdefs.ErrNotFound, "secret '%s' is not granted to container %s", src, name)
		}
	}
	if len(req.SecretAdd) > 0 {
		i := slices.IndexFunc(mine, func(v Volume) bool { return v.Name == req.Volume })
		if req.Volume == "" {
			if i = slices.Index(dests, defaultTarget); i < 0 && len(mine) == 1 {
				i = 0
			}
		}
		if i < 0 {
			return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "container %s has %d %s volumes and none at %s: name the one to grant to with --volume (%s)",
				name, len(mine), c.cfg.DriverName, defaultTarget, strings.Join(volumeNames(mine), ", "))
		}
		w := edit(i)
		for _, spec := range req.SecretAdd {
			entries, err := declaration.Parse(spec)
			if err != nil {
				return api.Task{}, err
			}
			for _, e := range entries {
				if err := c.grantable(e); err != nil {
					return api.Task{}, err
				}
				if err := grant(w, e); err != nil {
					return api.Task{}, err
				}
			}
		}
	}
	// Check every change before saving any.
	for _, v := range next {
		if f := v.Options[declaration.OptionFile]; f != "" {
			return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "volume %s holds the one file %s (option %s): grants and revokes do not apply to it", v.Name, f, declaration.OptionFile)
		}
		if _, err := v.Entries(); err != nil {
			return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "volume %s: %v", v.Name, err)
		}
		if others := otherUsers(list, s.ID, v.Name); len(others) > 0 && !req.Shared {
			return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "volume %s is shared with container%s %s, which would see the change too: give --shared to change it for all of them",
				v.Name, plural(others), strings.Join(others, ", "))
		}
	}
	var errs []error
	for _, v := range next {
		grants, revokes := v.Grants, v.Revokes
		if _, err := c.vols.change(v.Name, func(cur *Volume, ok bool) (bool, error) {
			if !ok {
				return false, fmt.Errorf("volume %s was removed meanwhile", v.Name)
			}
			cur.Grants, cur.Revokes = grants, revokes
			return false, nil
		}); err != nil {
			return api.Task{}, fmt.Errorf("save the grants of volume %s: %w", v.Name, err)
		}
		errs = append(errs, c.rewriteVolume(v.Name))
	}
	c.cfg.Log.Info("container secrets changed", "container", name, "added", len(req.SecretAdd), "removed", len(req.SecretRm), "volumes", len(next))
	out := api.Task{ContainerID: s.ID, ContainerName: name}
	for _, v := range mine {
		if w := next[v.Name]; w != nil {
			v = *w
		}
		entries, _ := v.Entries()
		for _, e := range entries {
			out.Secrets = append(out.Secrets, api.TaskSecret{Name: e.Source, Target: e.Target, Version: e.Version, Pinned: e.Version != 0})
		}
	}
	return out, errors.Join(errs...)
}

// revoke takes src out of a volume's set: grants of it go, and a declared
// entry of it is revoked.
func revoke(v *Volume, src string) {
	v.Grants = slices.DeleteFunc(v.Grants, func(g string) bool {
		es, _ := declaration.Parse(g)
		return len(es) == 1 && es[0].Source == src
	})
	base, _ := declaration.Parse(v.Declaration)
	if slices.ContainsFunc(base, func(e declaration.Entry) bool { return e.Source == src }) && !slices.Contains(v.Revokes, src) {
		v.Revokes = append(v.Revokes, src)
	}
}

// grant adds e to a volume's set. Granting back a revoked declared entry
// undoes the revoke; granting its source at another target keeps the
// declared one revoked, so the old target does not come back with it.
func grant(v *Volume, e declaration.Entry) error {
	base, err := declaration.Parse(v.Declaration)
	if err != nil {
		return err
	}
	eff, err := v.Entries()
	if err != nil {
		return err
	}
	if slices.ContainsFunc(eff, func(x declaration.Entry) bool { return x.String() == e.String() }) {
		return nil // already there, exactly
	}
	if slices.Contains(v.Revokes, e.Source) && slices.ContainsFunc(base, func(x declaration.Entry) bool { return x.String() == e.String() }) {
		v.Revokes = slices.DeleteFunc(v.Revokes, func(s string) bool { return s == e.Source })
		// Other declared targets of the source stay revoked only if they
		// were: a declaration may name one source at several targets.
		return nil
	}
	// A target already taken is refused when the result is checked.
	v.Grants = append(v.Grants, e.String())
	return nil
}

// grantable checks that a grant names a secret by its name, and a kept
// version when it pins one.
func (c *Controller) grantable(e declaration.Entry) error {
	sec, err := c.cfg.Store.Get(e.Source)
	if err == nil && sec.Name != e.Source {
		// Mounts resolve declarations by name only: an ID or ID prefix
		// would be saved here and then never mount.
		err = errdefs.Errorf(errdefs.ErrNotFound, "secret '%s' not found", e.Source)
	}
	if err != nil {
		return err
	}
	if e.Version != 0 && !sec.HasVersion(e.Version) {
		return errdefs.Errorf(errdefs.ErrNotFound, "secret '%s' has no version %d", e.Source, e.Version)
	}
	return nil
}

// rewriteVolume brings every running mount of a volume to its record.
func (c *Controller) rewriteVolume(volume string) error {
	v, ok := c.vols.get(volume)
	if !ok {
		return nil
	}
	entries, err := v.Entries()
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range c.tasks.all() {
		if t.volume != volume {
			continue
		}
		t.redeclare(entries)
		if _, _, err := c.refresh(t); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// otherUsers names the containers other than self that mount volume.
func otherUsers(list []container.Summary, self, volume string) []string {
	var out []string
	for _, s := range list {
		if s.ID == self {
			continue
		}
		if slices.ContainsFunc(s.Mounts, func(m container.MountPoint) bool { return m.Type == "volume" && m.Name == volume }) {
			out = append(out, summaryName(s))
		}
	}
	slices.Sort(out)
	return out
}

func volumeNames(vs []Volume) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Name
	}
	return out
}

func plural(names []string) string {
	if len(names) > 1 {
		return "s"
	}
	return ""
}

// findContainer resolves a container name or ID prefix through the engine;
// it returns the whole list too, for the volumes' other users.
func (c *Controller) findContainer(ctx context.Context, ref string) ([]container.Summary, container.Summary, error) {
	if c.cfg.Engine == nil {
		return nil, container.Summary{}, errNoEngine
	}
	lctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	list, err := c.cfg.Engine.ContainerList(lctx, container.ListOptions{All: true})
	if err != nil {
		return nil, container.Summary{}, errdefs.Errorf(errdefs.ErrUnavailable, "the Docker Engine did not answer: %v", err)
	}
	var byPrefix []container.Summary
	for _, s := range list {
		if s.ID == ref || slices.ContainsFunc(s.Names, func(n string) bool { return trimSlash(n) == ref }) {
			return list, s, nil
		}
		if len(ref) >= 3 && strings.HasPrefix(s.ID, ref) {
			byPrefix = append(byPrefix, s)
		}
	}
	switch len(byPrefix) {
	case 1:
		return list, byPrefix[0], nil
	case 0:
		return nil, container.Summary{}, errdefs.Errorf(errdefs.ErrNotFound, "no such container: %s", ref)
	default:
		return nil, container.Summary{}, errdefs.Errorf(errdefs.ErrInvalid, "container ID prefix %s is ambiguous", ref)
	}
}
