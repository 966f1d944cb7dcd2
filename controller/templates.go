package controller

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/templating"
)

// A templated secret or config (created with --template-driver golang) is
// rendered for each container at Mount, from the secrets and configs the
// container declares (its volume's scope, by target) and the container's
// identity, by internal/templating. A mount records, for each rendered
// entry, what it read: a rotation of any of those renders it again, in
// place, as a rotation of the entry itself would rewrite it (Rotate), and
// an update is refused beforehand when a running container could not
// render it (CheckUpdate). A rendering lives in the mount's tmpfs only,
// whatever its kind, and is never logged.

// readRef is one secret or config a rendering read, at the version it
// read; pinned when the container's declaration pins that version, so a
// rotation does not concern it.
type readRef struct {
	kind    declaration.Kind
	name    string
	id      string
	version int
	pinned  bool
}

// String names the reference as `secretd ps` shows it: KIND:NAME@VERSION.
func (r readRef) String() string {
	return fmt.Sprintf("%s:%s@%d", r.kind.Noun(), r.name, r.version)
}

// Node is what a template's .Node reads; the daemon gives it from the
// engine's information.
type Node = templating.Node

// render renders template entry e with what the container may read (the
// scope of in), reading values through get, and returns the rendering and
// what it read.
func (s *contents) render(e declaration.Entry, in contentInput, get func(declaration.Entry) (revealed, error)) ([]byte, []readRef, error) {
	scope := in.scope
	if scope == nil {
		scope = []declaration.Entry{e}
	}
	self := slices.IndexFunc(scope, func(x declaration.Entry) bool {
		return x.Kind == e.Kind && x.Source == e.Source && x.Version == e.Version
	})
	if self < 0 {
		scope = append(slices.Clone(scope), e)
		self = len(scope) - 1
	}
	files := make([]templating.File, len(scope))
	for j, x := range scope {
		files[j] = templating.File{
			Kind: templating.Kind(x.Kind.Noun()), Name: x.Source, Target: x.Target,
			Load: func() ([]byte, bool, error) {
				r, err := get(x)
				if err != nil {
					return nil, false, err
				}
				// The renderer wipes what it loads: it gets a copy.
				return bytes.Clone(r.data), r.template, nil
			},
		}
	}
	r := &templating.Renderer{Files: files, Identity: in.identity, MaxSize: func(k templating.Kind) int {
		if k == templating.Config {
			return store.KindConfig.MaxSize()
		}
		return store.KindSecret.MaxSize()
	}}
	defer r.Close()
	res, err := r.Render(self)
	if err != nil {
		return nil, nil, fmt.Errorf("%w%w", err, errTemplate)
	}
	var reads []readRef
	for _, j := range res.Reads {
		x := scope[j]
		v, err := get(x)
		if err != nil {
			clear(res.Data)
			return nil, nil, err
		}
		reads = append(reads, readRef{kind: x.Kind, name: x.Source, id: v.id, version: v.version, pinned: x.Version != 0})
	}
	return res.Data, reads, nil
}

// errTemplate marks an error of a template that does not render, so it
// reads as invalid input rather than an internal failure.
var errTemplate = errdefs.Errorf(errdefs.ErrInvalid, "")

// templateIdentity returns, for a mount of volume, the identity of the
// container its templates read (asked only if one does): the container
// known already (owner, or id), else the volume's only user. A volume
// several containers use gives no single answer: the template is refused.
func (b *binding) templateIdentity(ctx context.Context, volume string, owner *container.Summary, id string) func() (templating.Identity, error) {
	return func() (templating.Identity, error) {
		var s container.Summary
		switch {
		case owner != nil:
			s = *owner
		case b.engine == nil:
			return templating.Identity{}, errors.New("no engine is connected to say which container it is")
		default:
			lctx, cancel := context.WithTimeout(ctx, bindTimeout)
			defer cancel()
			f := filters.NewArgs(filters.Arg("volume", volume))
			if id != "" {
				f = filters.NewArgs(filters.Arg("id", id))
			}
			list, err := b.engine.ContainerList(lctx, container.ListOptions{All: true, Filters: f})
			if err != nil {
				return templating.Identity{}, fmt.Errorf("the Docker Engine did not say which container it is (%w): try again", err)
			}
			list = slices.DeleteFunc(list, func(s container.Summary) bool {
				return id == "" && !slices.ContainsFunc(s.Mounts, func(m container.MountPoint) bool { return m.Name == volume })
			})
			if len(list) != 1 {
				return templating.Identity{}, fmt.Errorf("volume %s is used by %d containers, and a template that reads the container's context renders for one: give each container a volume of its own", volume, len(list))
			}
			s = list[0]
		}
		node, err := b.node(ctx)
		if err != nil {
			return templating.Identity{}, err
		}
		o := identityOf(s)
		env, err := b.envs.get(o.ID)
		if err != nil {
			// Learned for the next start; see docs/templates.md.
			b.learnEnv(context.WithoutCancel(ctx), o.ID)
		}
		return templating.Identity{Context: templating.NewContext(templating.Container{ID: o.ID, Name: o.Name, Labels: o.Labels}, node), Env: env, EnvErr: err}, nil
	}
}

// node returns the host's .Node, from the daemon.
func (b *binding) node(ctx context.Context) (templating.Node, error) {
	if b.hostNode == nil {
		return templating.Node{}, errors.New("this daemon does not know its node")
	}
	return b.hostNode(ctx)
}

// following returns the tasks whose files follow sec: an entry of it that
// pins no version, or a rendering that read it unpinned.
func (tt *taskTable) following(sec store.Secret) []*task {
	kind := declKind(sec.Kind)
	var out []*task
	for _, t := range tt.all() {
		if follows(t.view(), kind, sec.Name) {
			out = append(out, t)
		}
	}
	return out
}

// follows reports whether a task's files follow the current version of the
// secret or config kind/name.
func follows(v taskView, kind declaration.Kind, name string) bool {
	if slices.ContainsFunc(v.entries, func(e declaration.Entry) bool { return e.Kind == kind && e.Source == name && e.Version == 0 }) {
		return true
	}
	for _, reads := range v.reads {
		if slices.ContainsFunc(reads, func(r readRef) bool { return r.kind == kind && r.name == name && !r.pinned }) {
			return true
		}
	}
	return false
}

// declKind is the declaration's kind of a store kind.
func declKind(k store.Kind) declaration.Kind {
	if k == store.KindConfig {
		return declaration.Config
	}
	return declaration.Secret
}

// CheckUpdate renders, with data as the next version of sec, every
// template of a running container that reads sec (or is sec), and fails
// naming each container and why when any would not render: `secret
// update` then stores nothing, and every container keeps what it has.
// Nothing is written: the renderings are wiped at once.
func (c *Controller) CheckUpdate(ctx context.Context, sec store.Secret, data []byte) error {
	kind := declKind(sec.Kind)
	var failed []string
	var errs []error
	for _, t := range c.tasks.following(sec) {
		v := t.view()
		if !v.live() || !rendersWith(v, kind, sec.Name) {
			continue
		}
		got, err := c.contents.files(ctx, v.entries, c.binding.contentFor(ctx, v, &nextVersion{kind: kind, sec: sec, data: data}))
		wipeFiles(got.files)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s (%v)", v.label(), err))
			errs = append(errs, err)
		}
	}
	if len(failed) == 0 {
		return nil
	}
	slices.Sort(failed)
	return errdefs.Errorf(errdefs.ErrInvalid, "%s '%s' was not updated: with the new data, templates of %d running container%s would not render: %s; fix the data or the templates (nothing was stored)",
		kind.Noun(), sec.Name, len(failed), pluralS(len(failed)), strings.Join(failed, "; "))
}

// rendersWith reports whether a task renders a template that is, or read,
// kind/name.
func rendersWith(v taskView, kind declaration.Kind, name string) bool {
	for i, e := range v.entries {
		if i >= len(v.rendered) || !v.rendered[i] {
			continue
		}
		if e.Kind == kind && e.Source == name {
			return true
		}
		if i < len(v.reads) && slices.ContainsFunc(v.reads[i], func(r readRef) bool { return r.kind == kind && r.name == name }) {
			return true
		}
	}
	return false
}

// contentFor is what a running task's files are made from: its volume's
// scope, its container, and next for a CheckUpdate.
func (b *binding) contentFor(ctx context.Context, v taskView, next *nextVersion) contentInput {
	who := knownSource(b, v)
	in := contentInput{who: who, mounted: v.dir, next: next, identity: b.templateIdentity(ctx, v.volume, nil, v.containerID)}
	if vol, ok := b.vols.get(v.volume); ok {
		if scope, err := vol.ScopeEntries(); err == nil && vol.Scope != "" {
			in.scope = scope
		}
	}
	if in.scope == nil {
		in.scope = v.entries
	}
	return in
}

// mountInput is what a Mount's files are made from: its container (for a
// secret driver and templates) and the volume's scope, which templates
// read: its own, or its entries.
func (b *binding) mountInput(ctx context.Context, volume string, v Volume, entries []declaration.Entry, owner *container.Summary) (contentInput, error) {
	in := contentInput{who: b.boundContainer(ctx, owner, v.BoundTo), identity: b.templateIdentity(ctx, volume, owner, v.BoundTo), scope: entries}
	if v.Scope != "" {
		scope, err := v.ScopeEntries()
		if err != nil {
			return contentInput{}, err
		}
		in.scope = scope
	}
	return in, nil
}
