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
//
// It finds the container and its volumes, has planGrants decide every
// change (checked before any is saved), then saves each volume's and
// rewrites its mounts.
func (c *Controller) UpdateContainer(ctx context.Context, ref string, req api.ContainerUpdateRequest) (api.Task, error) {
	if len(req.SecretAdd)+len(req.SecretRm)+len(req.ConfigAdd)+len(req.ConfigRm) == 0 {
		return api.Task{}, errdefs.Errorf(errdefs.ErrInvalid, "nothing to change: give --secret-add, --secret-rm, --config-add or --config-rm")
	}
	list, s, err := c.binding.findContainer(ctx, ref)
	if err != nil {
		return api.Task{}, err
	}
	mine, err := c.binding.volumesOf(ctx, s)
	if err != nil {
		return api.Task{}, err
	}
	plan, err := planGrants(req, grantInput{self: s, list: list, mine: mine, driver: c.cfg.DriverName, grantable: c.contents.grantable})
	if err != nil {
		return api.Task{}, err
	}
	var errs []error
	for _, v := range plan.changes {
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
	c.cfg.Log.Info("container secrets changed", "container", plan.task.ContainerName, "added", len(req.SecretAdd)+len(req.ConfigAdd), "removed", len(req.SecretRm)+len(req.ConfigRm), "volumes", len(plan.changes))
	return plan.task, errors.Join(errs...)
}

// mountedVolume is a volume of this driver a container mounts, bound.
type mountedVolume struct {
	Volume
	dest string // where the container mounts it
}

// volumesOf returns the container's volumes of this driver, bound.
func (b *binding) volumesOf(ctx context.Context, s container.Summary) ([]mountedVolume, error) {
	var mine []mountedVolume
	for _, m := range s.Mounts {
		if !b.ourMount(m) {
			continue
		}
		if _, err := b.ensureVolume(m.Name); err != nil {
			return nil, err
		}
		v, _, err := b.bind(ctx, m.Name)
		if err != nil {
			return nil, err
		}
		mine = append(mine, mountedVolume{v, m.Destination})
	}
	return mine, nil
}

// grantInput is what planGrants decides from.
type grantInput struct {
	self container.Summary   // the container
	list []container.Summary // every container, for the volumes' other users
	mine []mountedVolume     // its volumes of this driver
	// driver names this driver, for messages.
	driver string
	// grantable checks that a granted entry names a secret, and a kept
	// version when it pins one.
	grantable func(declaration.Entry) error
}

// grantPlan is what UpdateContainer does: the volumes it changes, with
// their new grants and revokes (sorted by name), and the container's
// secrets afterwards.
type grantPlan struct {
	changes []Volume
	task    api.Task
}

// planGrants decides a live grant and revoke: which volumes change and
// how, every change checked before any is saved. It reads nothing but its
// arguments.
func planGrants(req api.ContainerUpdateRequest, in grantInput) (grantPlan, error) {
	d := grantDraft{name: summaryName(in.self), in: in, next: map[string]*Volume{}}
	if len(in.mine) == 0 {
		return grantPlan{}, errdefs.Errorf(errdefs.ErrInvalid, "container %s has no %s volume: start it with one to manage its secrets", d.name, in.driver)
	}
	if req.Volume != "" && !slices.ContainsFunc(in.mine, func(v mountedVolume) bool { return v.Name == req.Volume }) {
		return grantPlan{}, errdefs.Errorf(errdefs.ErrInvalid, "container %s does not mount volume %s", d.name, req.Volume)
	}
	for _, src := range req.SecretRm {
		if err := d.revoke(declaration.Secret, src, req.Volume); err != nil {
			return grantPlan{}, err
		}
	}
	for _, src := range req.ConfigRm {
		if err := d.revoke(declaration.Config, src, req.Volume); err != nil {
			return grantPlan{}, err
		}
	}
	if len(req.SecretAdd) > 0 {
		if err := d.grant(req.SecretAdd, declaration.Parse, req.Volume); err != nil {
			return grantPlan{}, err
		}
	}
	if len(req.ConfigAdd) > 0 {
		if err := d.grant(req.ConfigAdd, declaration.ParseConfigs, req.Volume); err != nil {
			return grantPlan{}, err
		}
	}
	if err := d.check(req.Shared); err != nil {
		return grantPlan{}, err
	}
	return d.plan(), nil
}

// grantDraft is planGrants' work: the volumes changed so far.
type grantDraft struct {
	name string // the container's
	in   grantInput
	next map[string]*Volume
}

// edit returns the draft of volume i, made on first use.
func (d *grantDraft) edit(i int) *Volume {
	if v := d.next[d.in.mine[i].Name]; v != nil {
		return v
	}
	v := d.in.mine[i].clone()
	d.next[v.Name] = &v
	return &v
}

// current is volume i as the draft has it now.
func (d *grantDraft) current(i int) Volume {
	if w := d.next[d.in.mine[i].Name]; w != nil {
		return *w
	}
	return d.in.mine[i].Volume
}

// revoke takes src, of kind, from every volume (or the one named) that
// holds it.
func (d *grantDraft) revoke(kind declaration.Kind, src, only string) error {
	held := false
	for i, v := range d.in.mine {
		if only != "" && v.Name != only {
			continue
		}
		eff, err := d.current(i).Entries()
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(eff, func(e declaration.Entry) bool { return e.Kind == kind && e.Source == src }) {
			continue
		}
		held = true
		revoke(d.edit(i), kind, src)
	}
	if !held {
		return errdefs.Errorf(errdefs.ErrNotFound, "%s '%s' is not granted to container %s", kind.Noun(), src, d.name)
	}
	return nil
}

// grant adds every entry of specs (read by parse: secrets or configs) to
// the volume named, or else to the one at /run/secrets, or else to the
// container's only one.
func (d *grantDraft) grant(specs []string, parse func(string) ([]declaration.Entry, error), only string) error {
	mine := d.in.mine
	i := slices.IndexFunc(mine, func(v mountedVolume) bool { return v.Name == only })
	if only == "" {
		if i = slices.IndexFunc(mine, func(v mountedVolume) bool { return v.dest == defaultTarget }); i < 0 && len(mine) == 1 {
			i = 0
		}
	}
	if i < 0 {
		names := make([]string, len(mine))
		for j, v := range mine {
			names[j] = v.Name
		}
		return errdefs.Errorf(errdefs.ErrInvalid, "container %s has %d %s volumes and none at %s: name the one to grant to with --volume (%s)",
			d.name, len(mine), d.in.driver, defaultTarget, strings.Join(names, ", "))
	}
	w := d.edit(i)
	for _, spec := range specs {
		entries, err := parse(spec)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := d.in.grantable(e); err != nil {
				return err
			}
			if err := grant(w, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// check refuses the draft unless every changed volume may change so.
func (d *grantDraft) check(shared bool) error {
	for _, v := range d.next {
		if f := v.Options[declaration.OptionFile]; f != "" {
			return errdefs.Errorf(errdefs.ErrInvalid, "volume %s holds the one file %s (option %s): grants and revokes do not apply to it", v.Name, f, declaration.OptionFile)
		}
		if _, err := v.Entries(); err != nil {
			return errdefs.Errorf(errdefs.ErrInvalid, "volume %s: %v", v.Name, err)
		}
		if others := otherUsers(d.in.list, d.in.self.ID, v.Name); len(others) > 0 && !shared {
			return errdefs.Errorf(errdefs.ErrInvalid, "volume %s is shared with container%s %s, which would see the change too: give --shared to change it for all of them",
				v.Name, plural(others), strings.Join(others, ", "))
		}
	}
	return nil
}

// plan is the draft's outcome.
func (d *grantDraft) plan() grantPlan {
	p := grantPlan{task: api.Task{ContainerID: d.in.self.ID, ContainerName: d.name}}
	for _, v := range d.next {
		p.changes = append(p.changes, *v)
	}
	slices.SortFunc(p.changes, func(a, b Volume) int { return strings.Compare(a.Name, b.Name) })
	for i := range d.in.mine {
		entries, _ := d.current(i).Entries()
		for _, e := range entries {
			p.task.Secrets = append(p.task.Secrets, api.TaskSecret{Kind: string(e.Kind), Name: e.Source, Target: e.Target, Version: e.Version, Pinned: e.Version != 0})
		}
	}
	return p
}

// revoke takes src, of kind, out of a volume's set: grants of it go, and
// a declared entry of it is revoked.
func revoke(v *Volume, kind declaration.Kind, src string) {
	v.Grants = slices.DeleteFunc(v.Grants, func(g string) bool {
		es, _ := declaration.Parse(g)
		return len(es) == 1 && es[0].Kind == kind && es[0].Source == src
	})
	key := revokeName(kind, src)
	base, _ := declaration.Parse(v.Declaration)
	if slices.ContainsFunc(base, func(e declaration.Entry) bool { return e.Kind == kind && e.Source == src }) && !slices.Contains(v.Revokes, key) {
		v.Revokes = append(v.Revokes, key)
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
	if slices.Contains(v.Revokes, revokeKey(e)) && slices.ContainsFunc(base, func(x declaration.Entry) bool { return x.String() == e.String() }) {
		v.Revokes = slices.DeleteFunc(v.Revokes, func(s string) bool { return s == revokeKey(e) })
		// Other declared targets of the source stay revoked only if they
		// were: a declaration may name one source at several targets.
		return nil
	}
	// A target already taken is refused when the result is checked.
	v.Grants = append(v.Grants, e.String())
	return nil
}

// rewriteVolume brings every running mount of a volume to its record.
func (c *Controller) rewriteVolume(volume string) error {
	// A staged fill would not be used (its entries differ now), and holds
	// what the change may have revoked.
	c.staging.drop(volume, nil)
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

func plural(names []string) string {
	if len(names) > 1 {
		return "s"
	}
	return ""
}
