package controller

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
)

// A volume without a secrets option takes its declaration from the
// secretd.secrets label of the container created with it. It is learned
// once, at that container's create event (off the start path), or by one
// engine lookup when a Mount comes first, and then stored with the volume:
// every later Mount is a function of the volume's record alone. The rule is
// the same everywhere and depends on no timing: the volume binds only when
// every container that uses it carries the same non-empty label, set on
// the container and not inherited from its image.
//
// A volume's on-update (what happens to its containers after a rotation)
// is bound the same way, with the declaration or, for a volume that has
// its own secrets option, by itself: the volume's on-update option, or
// else the secretd.on-update label every container using it agrees on. A
// label that means nothing, differs between them or comes from the image
// fails the binding, and so the Mount, naming the label and its value.
// Only a Mount that finds no container using the volume yet (dockerd
// copying the image's files into it inside `docker create`, before the
// container is listed) goes on without it: nothing runs in that
// container yet, and its start's Mount asks again.

// bindTimeout bounds each engine call of a binding. At boot dockerd
// restarts its containers before it answers API calls, and waits on Mount
// while it does: without a bound the two would wait on each other.
const bindTimeout = 2 * time.Second

// createLookupTimeout bounds the lookup of a new container's mounts.
const createLookupTimeout = 5 * time.Second

// binding learns what the engine says about the driver's volumes and
// their containers, off the start path where it can: the declaration a
// volume binds to (by the rule above), the containers that use a volume,
// the hostnames and identities a secret driver is told. It holds the
// engine, the volume registry, the image-label cache and the engine
// lookups under way for each volume (see binder).
type binding struct {
	engine  Engine // nil only in tests whose volumes carry their declaration
	vols    *registry
	driver  string
	log     *slog.Logger
	store   *store.Store
	sources Sources
	// hostNode is the host as templates see it (Config.Node).
	hostNode func(ctx context.Context) (Node, error)

	flight binder
	// imageCache holds the secretd labels of images by ID (see imageLabels).
	imageMu    sync.Mutex
	imageCache map[string]map[string]string
	// learning counts the lookups of created containers under way.
	learning sync.WaitGroup
	// hostnames are the hostnames of containers that declare secrets,
	// learned at their create event, for secret-driver plugins.
	hostnames hostnames
	// envs are the environments of containers whose templates read them.
	envs envs
	// boundAtCreate is told of each volume a create event bound, whose
	// Mount is on its way (Controller.stage).
	boundAtCreate func(volume string)
}

func newBinding(cfg Config, vols *registry) *binding {
	return &binding{
		engine: cfg.Engine, vols: vols, driver: cfg.DriverName, log: cfg.Log, store: cfg.Store, sources: cfg.Sources, hostNode: cfg.Node,
		flight: binder{running: map[string]*lookups{}},
	}
}

// binder tracks the engine lookups under way for each volume. A Mount
// whose volume is being looked up waits for a lookup to end rather than
// asking again, and wakes at the end of each one, since any of them may
// have bound it. A create event asks about every unbound volume, whether
// or not a lookup of it is under way: one that began before the container
// existed cannot see it. Lookups of one volume may overlap and the first
// binding stands (see bindLabel). Each binding applies the rule to one
// whole answer of the engine, as a lone lookup would; which answer binds
// differs only if the volume's users changed between them, which decides
// a lone lookup's answer too.
type binder struct {
	mu      sync.Mutex
	running map[string]*lookups
}

// lookups are the engine lookups of one volume under way; ended is closed,
// and replaced while others remain, each time one of them ends.
type lookups struct {
	n     int
	ended chan struct{}
}

// join counts a lookup of each name.
func (b *binder) join(names []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range names {
		l := b.running[n]
		if l == nil {
			l = &lookups{ended: make(chan struct{})}
			b.running[n] = l
		}
		l.n++
	}
}

// joinIdle counts a lookup of name when none is under way; otherwise it
// returns a channel closed when one ends.
func (b *binder) joinIdle(name string) (ended <-chan struct{}, joined bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if l := b.running[name]; l != nil {
		return l.ended, false
	}
	b.running[name] = &lookups{n: 1, ended: make(chan struct{})}
	return nil, true
}

// leave ends a lookup of each name and wakes whoever waits for one.
func (b *binder) leave(names ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, n := range names {
		l := b.running[n]
		close(l.ended)
		if l.n--; l.n == 0 {
			delete(b.running, n)
		} else {
			l.ended = make(chan struct{})
		}
	}
}

// bind returns the volume bound, asking the engine if it is not yet.
// users are the containers the engine named when this call asked it.
func (b *binding) bind(ctx context.Context, name string) (v Volume, users []container.Summary, err error) {
	for {
		if v, ok := b.vols.get(name); ok && v.mountable() {
			return v, users, nil
		}
		ended, joined := b.flight.joinIdle(name)
		if !joined {
			select {
			case <-ended:
				continue
			case <-ctx.Done():
				return Volume{}, nil, fmt.Errorf("volume %s declares no secrets and its container's %s label was not learned in time: %w", name, LabelSecrets, ctx.Err())
			}
		}
		v, users, err = b.bindByEngine(ctx, name)
		b.flight.leave(name)
		if users == nil {
			users = []container.Summary{} // asked, whatever the answer
		}
		return v, users, err
	}
}

// bindByEngine asks the engine which containers use the volume and binds
// it to their label if they agree; any doubt is an error.
func (b *binding) bindByEngine(ctx context.Context, name string) (Volume, []container.Summary, error) {
	label, opt := LabelSecrets, OptionSecrets
	what := "declares no secrets"
	if v, ok := b.vols.get(name); ok && v.Bound() {
		if b.engine == nil {
			// Without an engine no container is known, and none can be
			// signalled or restarted either.
			return v, nil, nil
		}
		label, opt = LabelOnUpdate, OptionOnUpdate
		what = "has no " + OptionOnUpdate + " option"
	}
	if b.engine == nil {
		return Volume{}, nil, fmt.Errorf("volume %s %s and no engine is connected to read the container's %s label: create the volume with -o %s=...", name, what, label, opt)
	}
	lctx, cancel := context.WithTimeout(ctx, bindTimeout)
	defer cancel()
	users, _, err := b.usersOf(lctx, []string{name})
	if err != nil {
		return Volume{}, nil, fmt.Errorf("volume %s %s and the Docker Engine did not answer which container uses it, to read its %s label (%w): try again, or create the volume with -o %s=...", name, what, label, err, opt)
	}
	v, _, err := b.bindTo(lctx, name, users[name])
	return v, users[name], err
}

// usersOf asks the engine, in one call, which containers use each of the
// volumes: all of them, as a list filtered by one volume would name.
// list is the engine's whole answer.
func (b *binding) usersOf(ctx context.Context, volumes []string) (users map[string][]container.Summary, list []container.Summary, err error) {
	f := filters.NewArgs()
	for _, v := range volumes {
		f.Add("volume", v)
	}
	list, err = b.engine.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, nil, err
	}
	users = map[string][]container.Summary{}
	for _, s := range list {
		seen := map[string]bool{}
		for _, m := range s.Mounts {
			// The engine also matches a filter value against mount
			// destinations; only the volume's name counts here.
			if m.Type != "volume" || seen[m.Name] || !slices.Contains(volumes, m.Name) {
				continue
			}
			seen[m.Name] = true
			users[m.Name] = append(users[m.Name], s)
		}
	}
	return users, list, nil
}

// bindTo binds the volume to what its users agree on: the declaration of
// their label, unless the volume has its own, and their on-update label,
// unless the volume has an on-update option. A bound volume that no
// container uses yet is returned as it is. settled reports whether this
// call, and not an overlapping one, made the volume mountable.
func (b *binding) bindTo(ctx context.Context, name string, users []container.Summary) (v Volume, settled bool, err error) {
	v, _ = b.vols.get(name)
	if v.Bound() {
		if v.OnUpdate != "" || len(users) == 0 {
			return v, false, nil
		}
		onUpdate, err := b.agreedOnUpdate(ctx, name, users)
		if err != nil {
			return Volume{}, false, err
		}
		return b.learnOnUpdate(name, onUpdate)
	}
	decl, scope, owner, err := b.agreedLabel(ctx, name, users)
	if err != nil {
		return Volume{}, false, err
	}
	onUpdate := v.OnUpdate
	if onUpdate == "" {
		if onUpdate, err = b.agreedOnUpdate(ctx, name, users); err != nil {
			return Volume{}, false, err
		}
	}
	return b.bindLabel(name, decl, scope, owner, onUpdate)
}

// agreedOnUpdate applies the binding rule to the on-update labels of the
// containers that use volume (at least one): each means something, none
// comes from the image only, and all mean the same. It returns their
// canonical value.
func (b *binding) agreedOnUpdate(ctx context.Context, volume string, users []container.Summary) (string, error) {
	var agreed string
	var first container.Summary
	for _, s := range users {
		label := s.Labels[LabelOnUpdate]
		o, err := ParseOnUpdate(label)
		if err != nil {
			return "", fmt.Errorf("container %s: %w: fix the label, or give volume %s its own -o %s=...", summaryName(s), err, volume, OptionOnUpdate)
		}
		if label != "" {
			if err := b.notFromImage(ctx, s, LabelOnUpdate); err != nil {
				return "", err
			}
		}
		if agreed == "" {
			agreed, first = o.String(), s
			continue
		}
		if o.String() != agreed {
			return "", fmt.Errorf("containers %s and %s using volume %s carry different %s labels (%q and %q), and a volume has one: "+
				"give them the same label, give each its own volume, or give the volume its own -o %s=...",
				summaryName(first), summaryName(s), volume, LabelOnUpdate, first.Labels[LabelOnUpdate], label, OptionOnUpdate)
		}
	}
	if agreed == "" {
		return "", fmt.Errorf("volume %s: no container uses it yet to learn its %s label from", volume, LabelOnUpdate)
	}
	return agreed, nil
}

// agreedLabel applies the binding rule to the containers that use volume:
// at least one, all with the same non-empty label, none from an image only.
// owner is the oldest of them, the one created with the volume.
func (b *binding) agreedLabel(ctx context.Context, volume string, users []container.Summary) (decl, scope, owner string, err error) {
	if len(users) == 0 {
		return "", "", "", fmt.Errorf("volume %s declares no secrets and no container uses it yet: "+
			"if dockerd is copying the image's content into it at create, mount it with volume-nocopy "+
			"(--mount type=volume,volume-driver=secretd,volume-nocopy,dst=...), or create the volume with -o %s=...", volume, OptionSecrets)
	}
	users = slices.Clone(users)
	slices.SortFunc(users, func(a, b container.Summary) int { return int(a.Created - b.Created) })
	first := users[0]
	decl = labelText(first.Labels)
	for _, s := range users {
		d := labelText(s.Labels)
		if d == "" {
			return "", "", "", fmt.Errorf("volume %s declares no secrets and container %s using it has no %s label: add --label %s='NAME[;...]' or create the volume with -o %s=...",
				volume, summaryName(s), LabelSecrets, LabelSecrets, OptionSecrets)
		}
		if d != decl {
			return "", "", "", fmt.Errorf("volume %s declares no secrets and the containers using it declare different ones (%s and %s): give the volume its own declaration with -o %s=...",
				volume, summaryName(first), summaryName(s), OptionSecrets)
		}
	}
	// A declaration that does not parse or does not fit the containers'
	// mounts is refused before it is bound for good. Each container takes
	// the label's part for this volume, which is the same unless they
	// mount it at different places.
	_, decl, scope, err = b.labelShare(first, volume)
	if err != nil {
		return "", "", "", err
	}
	for _, s := range users[1:] {
		_, d, sc, err := b.labelShare(s, volume)
		if err != nil {
			return "", "", "", err
		}
		if d != decl || sc != scope {
			return "", "", "", fmt.Errorf("volume %s declares no secrets and the label of containers %s and %s gives it different secrets, since they mount it at different places: give the volume its own declaration with -o %s=...",
				volume, summaryName(first), summaryName(s), OptionSecrets)
		}
	}
	for _, s := range users {
		if err := b.notFromImage(ctx, s, LabelSecrets, LabelConfigs); err != nil {
			return "", "", "", err
		}
	}
	return decl, scope, first.ID, nil
}

// notFromImage refuses labels (of keys) that come only from the
// container's image: docker merges an image's LABELs into its containers'
// labels, and an image must not choose which secrets it gets, or restarts
// on rotation.
func (b *binding) notFromImage(ctx context.Context, s container.Summary, keys ...string) error {
	ref := s.ImageID
	if ref == "" {
		ref = s.Image
	}
	imgLabels, err := b.imageLabels(ctx, ref)
	if err != nil {
		return fmt.Errorf("cannot check the image labels of container %s: the Docker Engine did not answer (%w): try again", summaryName(s), err)
	}
	for _, k := range keys {
		if v := s.Labels[k]; v != "" && imgLabels[k] == v {
			opt := OptionSecrets
			if k == LabelOnUpdate {
				opt = OptionOnUpdate
			}
			return fmt.Errorf("container %s: label %s=%q comes from its image, and an image may not declare secrets or their on-update: "+
				"set it on the container (--label %s=...) or on the volume (-o %s=...)", summaryName(s), k, v, k, opt)
		}
	}
	return nil
}

// imageLabelsKept bounds the image-label cache; images are few on a host.
const imageLabelsKept = 256

// imageLabels returns the secretd labels of an image. An image ID names its
// content, labels included, so what an ID answered once holds for good and
// a binding asks the engine about each image once.
func (b *binding) imageLabels(ctx context.Context, ref string) (map[string]string, error) {
	byID := strings.HasPrefix(ref, "sha256:")
	if byID {
		b.imageMu.Lock()
		l, ok := b.imageCache[ref]
		b.imageMu.Unlock()
		if ok {
			return l, nil
		}
	}
	img, err := b.engine.ImageInspect(ctx, ref)
	if err != nil {
		return nil, err
	}
	l := map[string]string{}
	if img.Config != nil {
		for _, k := range []string{LabelSecrets, LabelConfigs, LabelOnUpdate} {
			if v, ok := img.Config.Labels[k]; ok {
				l[k] = v
			}
		}
	}
	if byID {
		b.imageMu.Lock()
		if b.imageCache == nil || len(b.imageCache) >= imageLabelsKept {
			b.imageCache = map[string]map[string]string{}
		}
		b.imageCache[ref] = l
		b.imageMu.Unlock()
	}
	return l, nil
}

// bindLabel fixes a volume's declaration to a container's label, and its
// on-update, unless it was bound meanwhile: the first binding stands. It
// is saved behind the Mount that waits for it: after a crash the same
// rule binds it again. settled reports whether this call bound it and
// made it mountable.
func (b *binding) bindLabel(name, decl, scope, containerID, onUpdate string) (_ Volume, settled bool, _ error) {
	bound := false
	v, err := b.vols.learn(name, func(v *Volume, ok bool) (bool, error) {
		if !ok {
			*v = Volume{Name: name, Created: time.Now().UTC(), Format: formatOnUpdate}
		}
		if v.Bound() {
			return false, nil
		}
		bound = true
		v.Declaration, v.BoundBy, v.BoundTo, v.Scope = decl, BoundByLabel, containerID, scope
		if v.OnUpdate == "" {
			v.OnUpdate = onUpdate
		}
		return false, nil
	}, func(err error) {
		b.log.Warn("volume binding not saved: kept in memory, and learned again after a restart", "volume", name, "err", err)
	})
	if err != nil {
		return Volume{}, false, fmt.Errorf("bind volume %s to its container's declaration: %w", name, err)
	}
	if bound { // another lookup may have bound it first
		b.log.Info("volume bound to its container's declaration", "volume", name, "container", shortID(containerID), "on_update", v.OnUpdate)
	}
	return v, bound && v.mountable(), nil
}

// learnOnUpdate fixes the on-update of a volume bound by its own option,
// unless it was learned meanwhile: the first stands. It is saved as
// bindLabel saves, and settled is bindLabel's.
func (b *binding) learnOnUpdate(name, onUpdate string) (_ Volume, settled bool, _ error) {
	learned := false
	v, err := b.vols.learn(name, func(v *Volume, ok bool) (bool, error) {
		if !ok {
			return false, fmt.Errorf("volume %s was removed while its %s label was learned", name, LabelOnUpdate)
		}
		if v.OnUpdate == "" {
			v.OnUpdate, learned = onUpdate, true
		}
		return false, nil
	}, func(err error) {
		b.log.Warn("volume on-update not saved: kept in memory, and learned again after a restart", "volume", name, "err", err)
	})
	if err != nil {
		return Volume{}, false, err
	}
	if learned {
		b.log.Info("volume on-update learned from its container", "volume", name, "on_update", v.OnUpdate)
	}
	return v, learned && v.mountable(), nil
}

// created learns the declarations of a new container's unbound volumes,
// and warns about a container that declares secrets but mounts no secretd
// volume, without holding up the event loop. labels are the create
// event's attributes, which carry the container's labels.
func (b *binding) created(ctx context.Context, id string, labels map[string]string) {
	// Only a container that declares can bind a volume's declaration, but
	// any container may be the one a volume learns its on-update from.
	// With nothing to learn, a container that does not declare costs no
	// engine call, which matters while many containers start.
	declaring := declares(labels)
	if b.engine == nil || (!declaring && len(b.vols.unbound(1)) == 0) {
		return
	}
	b.learning.Add(1)
	go func() {
		defer b.learning.Done()
		lctx, cancel := context.WithTimeout(ctx, createLookupTimeout)
		defer cancel()
		b.learnCreated(lctx, id, declaring)
	}()
}

// maxBatch bounds the volumes one create-event lookup asks about.
const maxBatch = 64

// learnCreated binds the unbound volumes in one engine call: a list of the
// containers that use any of them, which names every user of each, as the
// rule needs. A new container's volume was created just before it, so it
// is among them, and its Mount finds it bound without a call of its own.
// The container itself is looked up only when it is not in that list, to
// warn if it mounts no secretd volume.
func (b *binding) learnCreated(ctx context.Context, id string, declares bool) {
	self, found := b.learnBatch(ctx, id)
	if !declares {
		return
	}
	if !found {
		l, err := b.engine.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("id", id))})
		if err != nil {
			return
		}
		i := slices.IndexFunc(l, func(s container.Summary) bool { return s.ID == id })
		if i < 0 {
			return
		}
		self = l[i]
	}
	declaration.WarnUnserved(b.log, self, func(driver string) bool { return b.ours(driver) })
}

// learnBatch asks the engine once for the users of up to maxBatch unbound
// volumes, the newest first, and binds each volume that has some. Each
// volume's lookup ends as soon as it is bound, for the Mount that waits
// on it. It returns container id when the engine named it.
func (b *binding) learnBatch(ctx context.Context, id string) (container.Summary, bool) {
	names := b.vols.unbound(maxBatch)
	if len(names) == 0 {
		return container.Summary{}, false
	}
	b.flight.join(names)
	users, list, err := b.usersOf(ctx, names)
	if err != nil {
		b.flight.leave(names...)
		b.log.Debug("new container not looked up: its volumes bind at their Mount", "container", id, "err", err)
		return container.Summary{}, false
	}
	for _, name := range names {
		if len(users[name]) == 0 {
			b.flight.leave(name) // its container is not created yet
			continue
		}
		_, settled, err := b.bindTo(ctx, name, users[name])
		b.flight.leave(name)
		if settled && b.boundAtCreate != nil {
			// Only the lookup that made it mountable: an overlapping one
			// would stage again what a Mount may have taken already.
			b.boundAtCreate(name)
		}
		if err != nil {
			// Said once, at the create of a container that uses it: the
			// volume is asked about again at every create while unbound.
			lvl := slog.LevelDebug
			if slices.ContainsFunc(users[name], func(s container.Summary) bool { return s.ID == id }) {
				lvl = slog.LevelInfo
			}
			b.log.Log(ctx, lvl, "volume not bound at its container's create", "volume", name, "container", summaryName(users[name][0]), "err", err)
		}
	}
	i := slices.IndexFunc(list, func(s container.Summary) bool { return s.ID == id })
	if i < 0 {
		return container.Summary{}, false
	}
	return list[i], true
}

// WaitLearning waits until the lookups of created containers are done and
// the bindings they learned are saved.
func (c *Controller) WaitLearning() { c.binding.saveLearned() }

func summaryName(s container.Summary) string {
	if len(s.Names) > 0 {
		return strings.TrimPrefix(s.Names[0], "/")
	}
	return shortID(s.ID)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ours reports whether a driver name the engine reports is this driver: a
// managed plugin shows as NAME:TAG.
func (b *binding) ours(driver string) bool {
	return driver == b.driver || strings.HasPrefix(driver, b.driver+":")
}

// ourMount reports whether a container's mount is a volume of this
// driver: by the driver's name, or by the volume's name, which the engine
// keeps unique across drivers. A managed plugin is known to the engine by
// the name it was installed under, which may not be the one it was given.
func (b *binding) ourMount(m container.MountPoint) bool {
	return m.Type == "volume" && (b.ours(m.Driver) || b.vols.has(m.Name))
}

// ensureVolume returns the record of a volume dockerd uses, creating an
// unbound one when dockerd created it before secretd's state was lost.
func (b *binding) ensureVolume(name string) (Volume, error) {
	if v, ok := b.vols.get(name); ok {
		return v, nil
	}
	v, err := b.vols.change(name, func(v *Volume, ok bool) (bool, error) {
		if !ok {
			*v = Volume{Name: name, Created: time.Now().UTC(), Format: formatOnUpdate}
		}
		return false, nil
	})
	if err = keptInMemory(b.log, name, err); err != nil {
		return Volume{}, err
	}
	if v.Name == "" {
		v, _ = b.vols.get(name)
	}
	return v, nil
}

// bindVolume is step 2 of a Mount: the volume bound, and the container
// the Mount is for when the engine lookup that bound it named only one.
func (b *binding) bindVolume(ctx context.Context, volume string, ph *phases) (Volume, *container.Summary, error) {
	v, err := b.ensureVolume(volume)
	if err != nil {
		return Volume{}, nil, err
	}
	var users []container.Summary
	if !v.mountable() {
		if v, users, err = b.bind(ctx, volume); err != nil {
			return Volume{}, nil, err
		}
		ph.engine = users != nil
	}
	ph.declared = v.BoundBy
	if len(users) == 1 {
		// The lookup that bound the volume named its only user: this
		// Mount is for it, as surely as a volume mount event would say.
		return v, &users[0], nil
	}
	return v, nil, nil
}

// findContainer resolves a container name or ID prefix through the engine;
// it returns the whole list too, for the volumes' other users.
func (b *binding) findContainer(ctx context.Context, ref string) ([]container.Summary, container.Summary, error) {
	if b.engine == nil {
		return nil, container.Summary{}, errNoEngine
	}
	lctx, cancel := context.WithTimeout(ctx, engineTimeout)
	defer cancel()
	list, err := b.engine.ContainerList(lctx, container.ListOptions{All: true})
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
