package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"

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
// update`.
type RotationError struct {
	// Kind, Secret and Version are what was being pushed: a secret or a
	// config, its name and version.
	Kind    store.Kind
	Secret  string
	Version int
	// Failed is sorted by container name.
	Failed []RotationFailure
}

// RotationFailure is one container a rotation did not reach, and why.
type RotationFailure struct {
	Container   string
	ContainerID string
	Mount       string
	Err         error
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
	return fmt.Sprintf("version %d of %s '%s' is stored but did not reach %d container%s, %s the previous version: %s; fix the cause and update the %s again, or restart %s",
		e.Version, kind, e.Secret, n, pluralS(n), them, strings.Join(parts, ", "), kind, pronoun(n))
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
// it (entries without a pin), then runs each container's on-update action.
// It returns once every mount holds the new files; restarts it asks for run
// in the background. A container it could not update is logged, audited,
// counted, and named in the *RotationError it returns.
func (c *Controller) Rotate(ctx context.Context, sec store.Secret) (int, error) {
	todo := c.affected(sec)
	r := &rotation{c: c, sec: sec}
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

	mu     sync.Mutex
	failed []RotationFailure
	count  int
}

// one pushes the version into one mount, then runs its on-update action.
func (r *rotation) one(ctx context.Context, t *task) {
	if r.boundFile(t) {
		r.deferToRestart(ctx, t)
		return
	}
	s, changed, err := r.c.refresh(t)
	if err != nil {
		// A shared mount (Podman's) fails every container that reads it.
		for _, w := range s.containers() {
			r.fail(RotationFailure{Container: w.label(), ContainerID: w.containerID, Mount: w.dir, Err: err})
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
		r.afterUpdate(ctx, w)
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

// result counts the mounts rewritten and names the containers not reached.
func (r *rotation) result() (int, error) {
	r.c.rotations.Add(uint64(r.count))
	r.c.cfg.Metrics.Rotated(r.count)
	if len(r.failed) == 0 {
		return r.count, nil
	}
	slices.SortFunc(r.failed, func(a, b RotationFailure) int { return strings.Compare(a.Container, b.Container) })
	return r.count, &RotationError{Kind: r.sec.Kind, Secret: r.sec.Name, Version: r.sec.Current, Failed: r.failed}
}

// boundFile reports whether the task mounts a one-file volume (an
// absolute target): the engine bind-mounted that file's inode, which an
// atomic update replaces, and zeroing the retired inode would empty the
// container's file. Such a mount keeps its version until the next start.
func (r *rotation) boundFile(t *task) bool {
	v, ok := r.c.vols.get(t.volume)
	return ok && v.Options[declaration.OptionFile] != ""
}

// deferToRestart leaves a bound file as it is and, when the container asks
// for it with secretd.on-update=restart, restarts it so its next start
// binds the new version.
func (r *rotation) deferToRestart(ctx context.Context, t *task) {
	for _, s := range t.view().containers() {
		r.c.cfg.Log.Info("rotation reaches a file bound at an absolute target at the container's next start",
			"secret", r.sec.Name, "version", r.sec.Current, "container", s.label(), "mount", s.dir)
		if s.onUpdate.Action == "restart" {
			r.afterUpdate(ctx, s)
		}
	}
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
	return t.refresh(func(v taskView) (content, error) {
		ctx := context.Background()
		return c.contents.files(ctx, v.entries, c.contentFor(ctx, v, nil))
	}, c.cfg.Log)
}

// knownSource is a running task's container, for a driver secret's source.
func knownSource(b *binding, v taskView) func() source.Container {
	return knownContainer(source.Container{ID: v.containerID, Name: v.name, Image: v.image, Hostname: b.hostnames.get(v.containerID)})
}

// afterUpdate runs the container's secretd.on-update action, unless the
// action comes from the container's image only: an image may not choose
// to be restarted or signalled.
func (r *rotation) afterUpdate(ctx context.Context, s taskView) {
	c, sec := r.c, r.sec
	if c.cfg.Actions == nil || s.containerID == "" || s.onUpdate.Action == "" || s.onUpdate.Action == "none" {
		return
	}
	if c.cfg.Engine != nil && s.image != "" {
		ictx, cancel := context.WithTimeout(ctx, engineTimeout)
		img, err := c.cfg.Engine.ImageInspect(ictx, s.image)
		cancel()
		if err != nil {
			c.cfg.Log.Warn("on-update action skipped: the image's labels could not be read", "container", s.name, "err", err)
			return
		}
		if img.Config != nil {
			if v := img.Config.Labels[LabelOnUpdate]; v != "" {
				if fromImage, err := ParseOnUpdate(v); err == nil && fromImage == s.onUpdate {
					c.cfg.Log.Warn("on-update action skipped: it comes from the image's labels; set it on the container with --label "+LabelOnUpdate+"=...", "container", s.name)
					return
				}
			}
		}
	}
	switch s.onUpdate.Action {
	case "signal":
		ktx, cancel := context.WithTimeout(ctx, engineTimeout)
		defer cancel()
		if err := c.cfg.Actions.ContainerKill(ktx, s.containerID, s.onUpdate.Signal); err != nil {
			c.cfg.Log.Warn("on-update signal failed", "container", s.name, "signal", s.onUpdate.Signal, "err", err)
			return
		}
		c.cfg.Log.Info("on-update signal sent", "container", s.name, "secret", sec.Name, "version", sec.Current, "signal", s.onUpdate.Signal)
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
