package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/store"
)

// Actions are the engine calls a rotation's on-update label may ask for.
type Actions interface {
	ContainerKill(ctx context.Context, id, signal string) error
	ContainerRestart(ctx context.Context, id string, opts container.StopOptions) error
}

// rotateWorkers bounds how many mounts are rewritten at once: enough to
// hide one slow container, few enough for a 2-core host.
const rotateWorkers = 8

// RotationError lists the containers a rotation did not reach: each keeps
// the files it had. Its message names them all, for the user of `secret
// update`, and the containers that get the version only later.
type RotationError struct {
	// Kind, Secret and Version are what was being pushed: a secret or a
	// config, its name and version.
	Kind    store.Kind
	Secret  string
	Version int
	// Failed is sorted by container name.
	Failed []RotationFailure
	// Later are the containers the rotation did not fail but that get the
	// version only later (see api.Rotation), sorted by name.
	Later []api.ContainerRotation
}

// RotationFailure is one container a rotation did not reach, and why.
type RotationFailure struct {
	Container   string
	ContainerID string
	Mount       string
	// Targets are where the container reads the secret, in its volume.
	Targets []string
	Err     error
}

// Error names every container and its reason on one line.
func (e *RotationError) Error() string {
	parts := make([]string, len(e.Failed))
	for i, f := range e.Failed {
		parts[i] = fmt.Sprintf("%s (%v)", f.Container, f.Err)
	}
	n := len(e.Failed)
	them := "it still reads"
	if n > 1 {
		them = "they still read"
	}
	kind := e.Kind
	if kind == "" {
		kind = store.KindSecret
	}
	msg := fmt.Sprintf("version %d of %s '%s' is stored but did not reach %d container%s, %s the previous version: %s; fix the cause and update the %s again, or restart %s",
		e.Version, kind, e.Secret, n, pluralS(n), them, strings.Join(parts, ", "), kind, pronoun(n))
	for _, l := range e.Later {
		msg += "; " + l.Notice("it", e.Version)
	}
	return msg
}

// Unwrap gives the per-container errors, so errors.Is sees their kinds.
func (e *RotationError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f.Err
	}
	return out
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func pronoun(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}

// Rotate pushes the current version of sec into every mount that follows
// it (entries without a pin), then runs each volume's on-update action.
// It returns once every mount holds the new files; restarts it asks for run
// in the background. The report counts the mounts rewritten and lists the
// containers that get the version only later (a file bound at an absolute
// target) or not at all. A container it could not update is logged,
// audited, counted, and named in the *RotationError it returns.
func (c *Controller) Rotate(ctx context.Context, sec store.Secret) (api.Rotation, error) {
	todo := c.tasks.following(sec)
	r := &rotation{c: c, sec: sec}
	if len(todo) > 1 || len(todo) == 1 && sec.Source == nil {
		// Decrypted once for every mount, not once per mount; for one
		// mount too when the store's hook announced it (no read then).
		r.value = c.contents.revealOnce(sec)
		defer r.value.wipe()
	}
	next := make(chan *task)
	var wg sync.WaitGroup
	for range min(rotateWorkers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := range next {
				r.one(ctx, t)
			}
		}()
	}
	for _, t := range todo {
		next <- t
	}
	close(next)
	wg.Wait()
	return r.result()
}

// rotation is one Rotate under way: the version pushed, and what its
// workers did.
type rotation struct {
	c   *Controller
	sec store.Secret
	// value is the version pushed, decrypted once for all the mounts; nil
	// when each mount reads its own (a driver secret, or one mount).
	value *nextVersion

	mu     sync.Mutex
	failed []RotationFailure
	later  []api.ContainerRotation
	count  int
}

// one pushes the version into one mount, then runs its volume's on-update
// action.
func (r *rotation) one(ctx context.Context, t *task) {
	vol, _ := r.c.vols.get(t.volume)
	if vol.oneFile() {
		r.deferToRestart(ctx, t, vol.onUpdate())
		return
	}
	s, changed, err := r.c.refreshWith(t, r.value)
	if err != nil {
		// A shared mount (Podman's) fails every container that reads it.
		for _, w := range s.containers() {
			r.fail(RotationFailure{Container: w.label(), ContainerID: w.containerID, Mount: w.dir, Targets: w.targets(declKind(r.sec.Kind), r.sec.Name, false), Err: err})
		}
		return
	}
	if !changed {
		return
	}
	r.mu.Lock()
	r.count++
	r.mu.Unlock()
	for _, w := range s.containers() {
		r.c.cfg.Audit.Log(r.event(audit.Event{Event: audit.ContainerRotate, Version: r.sec.Current,
			Container: w.name, ContainerID: w.containerID, Mount: w.dir}))
		r.afterUpdate(ctx, w, vol.onUpdate())
	}
}

// event is e naming the secret or config pushed.
func (r *rotation) event(e audit.Event) audit.Event {
	if r.sec.Kind == store.KindConfig {
		e.Config, e.ConfigID = r.sec.Name, r.sec.ID
	} else {
		e.Secret, e.SecretID = r.sec.Name, r.sec.ID
	}
	return e
}

// result counts the mounts rewritten and names the containers not reached
// and those reached only later.
func (r *rotation) result() (api.Rotation, error) {
	r.c.rotations.Add(uint64(r.count))
	r.c.cfg.Metrics.Rotated(r.count)
	slices.SortFunc(r.later, func(a, b api.ContainerRotation) int { return strings.Compare(a.ContainerName, b.ContainerName) })
	rot := api.Rotation{Version: r.sec.Current, Updated: r.count}
	for _, f := range r.failed {
		rot.Containers = append(rot.Containers, api.ContainerRotation{ContainerID: f.ContainerID, ContainerName: f.Container,
			Targets: f.Targets, Gets: api.RotationKept, Reason: f.Err.Error()})
	}
	rot.Containers = append(rot.Containers, r.later...)
	slices.SortStableFunc(rot.Containers, func(a, b api.ContainerRotation) int { return strings.Compare(a.ContainerName, b.ContainerName) })
	if len(r.failed) == 0 {
		return rot, nil
	}
	slices.SortFunc(r.failed, func(a, b RotationFailure) int { return strings.Compare(a.Container, b.Container) })
	return rot, &RotationError{Kind: r.sec.Kind, Secret: r.sec.Name, Version: r.sec.Current, Failed: r.failed, Later: r.later}
}

// deferToRestart leaves a one-file volume's mount as it is: the engine
// bind-mounted that file's inode over a path of the container, an atomic
// update would link a new inode that the container never sees, and
// zeroing the retired one would empty the container's file. The container
// gets the version at its next start, which a volume whose on-update is
// restart asks for now. Either way the caller hears of it, naming the
// container and the file.
func (r *rotation) deferToRestart(ctx context.Context, t *task, o OnUpdate) {
	// A shared mount (Podman's) is reported for each container reading it.
	for _, s := range t.view().containers() {
		r.deferView(ctx, s, o)
	}
}

// deferView is deferToRestart for one container of the task.
func (r *rotation) deferView(ctx context.Context, s taskView, o OnUpdate) {
	kind := declKind(r.sec.Kind)
	if s.holds(kind, r.sec.Name, r.sec.Current) {
		return // it started after the update was stored
	}
	targets := s.targets(kind, r.sec.Name, true)
	later := api.ContainerRotation{ContainerID: s.containerID, ContainerName: s.label(), Targets: targets, Gets: api.RotationNextStart,
		Reason: fmt.Sprintf("%s is a file bound at an absolute target, which a running container keeps as it was: restart the container to give it the new version, or run it with the label %s=restart",
			strings.Join(targets, ", "), LabelOnUpdate)}
	if o.Action == "restart" && s.containerID != "" && r.c.cfg.Actions != nil {
		later.Gets = api.RotationRestarting
		later.Reason = fmt.Sprintf("%s is a file bound at an absolute target, which a running container keeps as it was: secretd is restarting it, as %s=restart asks",
			strings.Join(targets, ", "), LabelOnUpdate)
	}
	r.c.cfg.Log.Info("rotation reaches a file bound at an absolute target at the container's next start",
		"secret", r.sec.Name, "version", r.sec.Current, "container", s.label(), "mount", s.dir, "target", strings.Join(targets, ","), "restart", later.Gets == api.RotationRestarting)
	r.mu.Lock()
	r.later = append(r.later, later)
	r.mu.Unlock()
	if later.Gets == api.RotationRestarting {
		r.afterUpdate(ctx, s, o)
	}
}

// holds reports whether every file of the task that follows the secret
// or config kind/name (as its entry or as what its template read) holds
// version; false when what is mounted is not known.
func (v taskView) holds(kind declaration.Kind, name string, version int) bool {
	for i, e := range v.entries {
		if e.Kind == kind && e.Source == name && e.Version == 0 && (i >= len(v.versions) || v.versions[i] != version) {
			return false
		}
		if i < len(v.reads) {
			for _, r := range v.reads[i] {
				if r.kind == kind && r.name == name && !r.pinned && r.version != version {
					return false
				}
			}
		}
	}
	return v.versions != nil
}

// targets lists where the container reads the secret or config
// kind/name through the task, or a rendering that read it (see
// taskView.target).
func (v taskView) targets(kind declaration.Kind, name string, oneFile bool) []string {
	var out []string
	for i, e := range v.entries {
		reads := i < len(v.reads) && slices.ContainsFunc(v.reads[i], func(r readRef) bool { return r.kind == kind && r.name == name })
		if (e.Kind == kind && e.Source == name) || reads {
			out = append(out, v.target(e, oneFile))
		}
	}
	return out
}

// fail records one container the rotation did not reach: the log, the
// audit trail and the metrics each hear of it, and so does the caller.
func (r *rotation) fail(f RotationFailure) {
	sec, cfg := r.sec, r.c.cfg
	cfg.Log.Error("rotation did not reach a container: it keeps the previous version",
		"secret", sec.Name, "version", sec.Current, "container", f.Container, "mount", f.Mount, "err", f.Err)
	cfg.Metrics.Error("rotate", f.Err)
	cfg.Metrics.RotationFailed(1)
	cfg.Audit.Log(r.event(audit.Event{Event: audit.ContainerRotateFailed, Version: sec.Current,
		Container: f.Container, ContainerID: f.ContainerID, Mount: f.Mount, Reason: f.Err.Error()}))
	r.mu.Lock()
	r.failed = append(r.failed, f)
	r.mu.Unlock()
}

// refresh rewrites a task's mount with the versions its entries resolve to
// now, if any differs from what is mounted (see task.refresh). A driver
// secret among the entries keeps the value mounted; one granted live is
// fetched, bounded by its source's own deadline.
func (c *Controller) refresh(t *task) (taskView, bool, error) {
	return c.refreshWith(t, nil)
}

// refreshWith is refresh with the value of a rotation's version already
// decrypted (nil: none), which the task's entries take in place of a
// store read; a value older than what the mount holds by then is not
// written (see task.rewrite).
func (c *Controller) refreshWith(t *task, value *nextVersion) (taskView, bool, error) {
	return t.refresh(func(v taskView) (content, error) {
		ctx := context.Background()
		in := c.binding.contentFor(ctx, v, nil)
		in.rotated = value
		return c.contents.files(ctx, v.entries, in)
	}, c.cfg.Log)
}

// knownSource is a running task's container, for a driver secret's source.
func knownSource(b *binding, v taskView) func() source.Container {
	return knownContainer(source.Container{ID: v.containerID, Name: v.name, Image: v.image, Hostname: b.hostnames.get(v.containerID)})
}

// afterUpdate runs the volume's on-update action o on the container. The
// binding that fixed o refused one that came from an image's labels only:
// an image may not choose to be restarted or signalled.
func (r *rotation) afterUpdate(ctx context.Context, s taskView, o OnUpdate) {
	c, sec := r.c, r.sec
	if c.cfg.Actions == nil || s.containerID == "" || o.Action == "" || o.Action == "none" {
		return
	}
	switch o.Action {
	case "signal":
		ktx, cancel := context.WithTimeout(ctx, engineTimeout)
		defer cancel()
		if err := c.cfg.Actions.ContainerKill(ktx, s.containerID, o.Signal); err != nil {
			c.cfg.Log.Warn("on-update signal failed", "container", s.name, "signal", o.Signal, "err", err)
			return
		}
		c.cfg.Log.Info("on-update signal sent", "container", s.name, "secret", sec.Name, "version", sec.Current, "signal", o.Signal)
	case "restart":
		id, name := s.containerID, s.name
		go func() {
			// Not the request's context: the restart outlives the update call.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := c.cfg.Actions.ContainerRestart(rctx, id, container.StopOptions{}); err != nil {
				c.cfg.Log.Warn("on-update restart failed", "container", name, "err", err)
				return
			}
			c.cfg.Log.Info("on-update restart done", "container", name, "secret", sec.Name)
		}()
	}
}
