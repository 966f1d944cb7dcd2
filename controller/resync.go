package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/tmpfs"
)

// Resync makes the task table and the mounts agree with the engine: a mount
// whose container is alive is kept (and adopted after a daemon restart),
// any other mount is wiped. It runs at start and after every break of the
// event stream, because Unmounts sent while secretd was down are lost.
//
// It gathers what the engine, the mount root and the table say, has
// planResync decide what to do with each mount, and then does it.
func (c *Controller) Resync(ctx context.Context) (err error) {
	defer func() { c.cfg.Metrics.Error("resync", err) }()
	if c.cfg.Engine == nil {
		return errNoEngine
	}
	start := time.Now()
	list, err := c.cfg.Engine.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("resync: list containers: %w", err)
	}
	c.engine.learn(ctx, c.cfg.Engine, c.cfg.Log)
	f := survey(list, c.binding.ourMount)
	c.binding.learnFromList(ctx, list, f)
	c.legacy.migrate(list, c.binding.ourMount, c.vols, c.rewriteVolume, c.cfg.Log)
	// Tasks mounted before the mount root is listed: one whose tmpfs is
	// not listed has lost it. A Mount that fills its task after the
	// listing is not among them.
	before := c.root.tableNow()
	mounts, err := tmpfs.Mounts(c.cfg.MountRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("resync: %w", err)
	}
	plan := planResync(c.root.found(mounts), before, f, time.Now(), c.cfg.Grace)
	run := &resyncRun{c: c, live: map[string]bool{}}
	run.apply(plan)
	n, live, errs := run.n, run.live, run.errs
	_, done := c.engine.status()
	errs = append(errs, c.root.cleanMountRoot(live, done == 0)...)
	c.engine.resynced()
	c.cfg.Metrics.Resync()
	containers := len(list)
	if containers >= largeResync {
		debug.FreeOSMemory()
	}
	c.cfg.Log.Info("resync done", "containers", containers, "mounts_kept", n.kept, "mounts_wiped", n.wiped, "adopted", n.adopted, "duration", time.Since(start))
	return errors.Join(errs...)
}

// largeResync is the engine's container count from which a resync hands
// the memory it used back to the kernel when it ends. The engine's list of
// every container, decoded whole, and the maps sorted from it take several
// times the daemon's steady heap for the moment of the resync; the Go
// runtime keeps such pages for reuse and returns them only gradually, so a
// daemon that resynced a large fleet would stay that large for a while.
// Resyncs are rare (start, a break of the event stream), and the one extra
// collection costs a few milliseconds, counted in the resync's duration.
const largeResync = 1000

// fleet is what a resync's container list says about this driver's
// volumes.
type fleet struct {
	// byID and byVolume are the live containers that mount a volume of
	// this driver, by ID and by volume name; users are all of them, alive
	// or not, by volume name.
	byID     map[string]container.Summary
	byVolume map[string][]container.Summary
	users    map[string][]container.Summary
	// listed holds every container's ID; mountsOurs those that mount a
	// volume of this driver.
	listed, mountsOurs map[string]bool
}

// survey sorts the engine's container list by volume; ours says which
// mounts are volumes of this driver.
func survey(list []container.Summary, ours func(container.MountPoint) bool) fleet {
	f := fleet{
		byID: map[string]container.Summary{}, byVolume: map[string][]container.Summary{}, users: map[string][]container.Summary{},
		listed: make(map[string]bool, len(list)), mountsOurs: map[string]bool{},
	}
	for _, s := range list {
		f.listed[s.ID] = true
		for _, m := range s.Mounts {
			if !ours(m) {
				continue
			}
			f.mountsOurs[s.ID] = true
			f.users[m.Name] = append(f.users[m.Name], s)
			if alive(s.State) {
				f.byID[s.ID] = s
				f.byVolume[m.Name] = append(f.byVolume[m.Name], s)
			}
		}
	}
	return f
}

// learnFromList learns what the list tells beside the mounts: the
// hostnames of containers created while secretd was away (for their next
// start, if a source needs them, as at a create event), which containers
// are gone, and the declarations of volumes in use.
func (b *binding) learnFromList(ctx context.Context, list []container.Summary, f fleet) {
	var learn []string        // containers whose hostname a source needs
	var names map[string]bool // sourcedSecrets, listed once when needed
	for _, s := range list {
		decl, declares := s.Labels[LabelSecrets]
		if !declares || !f.mountsOurs[s.ID] || b.hostnames.known(s.ID) {
			continue
		}
		if names == nil {
			names = b.sourcedSecrets()
		}
		if b.declaresSourcedBy(decl, func(e declaration.Entry) bool { return e.Version == 0 && names[e.Source] }) {
			learn = append(learn, s.ID)
		}
	}
	b.learnHostnames(ctx, learn...)
	b.hostnames.keepOnly(f.listed) // destroy events lost while away
	b.bindListed(ctx, f.users)
}

// foundMount is one mount under the mount root as a resync finds it.
type foundMount struct {
	dir, name string
	// spare: a spare owned here; mine: secretd's own, by its name or a
	// task record beside it.
	spare, mine bool
	// task is the task that holds it, with its view; nil when none.
	task *task
	view taskView
	// rec is the task's record, or the one on disk (empty when there is
	// none or it does not read).
	rec *taskRecord
}

// resyncStep is what a resync does with one mount, or one task.
type resyncStep int

const (
	skipSpare    resyncStep = iota // a spare: not a container's
	leaveForeign                   // not secretd's: left as it is, with a warning
	adopt                          // a live container's, not in the table: adopted
	claimIt                        // its task gets the container no event named
	share                          // a shared mount its volume's live users keep: they are its members
	keep                           // a live container's: nothing to change
	keepStarting                   // a start in progress: looked at again later
	wipeIt                         // no live container holds it: wiped
	dropTask                       // the task's tmpfs is gone: it leaves the table
)

// resyncAction is one step of a resync's plan.
type resyncAction struct {
	step  resyncStep
	mount foundMount // for a task's drop, only its task and view
	// owner is the live container that holds the mount (adopt, claimIt).
	owner container.Summary
	// users are the live containers of a shared mount's volume (adopt,
	// share).
	users []container.Summary
	// after is when a start in progress is looked at again.
	after time.Duration
}

// planResync decides what a resync does with each mount found, and with
// each task mounted before the listing whose tmpfs is not among them. It
// reads nothing but its arguments.
func planResync(found, before []foundMount, f fleet, now time.Time, grace time.Duration) []resyncAction {
	var plan []resyncAction
	listed := map[string]bool{}
	for _, m := range found {
		listed[m.name] = true
		plan = append(plan, planMount(m, f, now, grace))
	}
	for _, m := range before {
		if m.view.live() && !listed[m.name] {
			plan = append(plan, resyncAction{step: dropTask, mount: m})
		}
	}
	return plan
}

// planMount decides what a resync does with one mount.
func planMount(m foundMount, f fleet, now time.Time, grace time.Duration) resyncAction {
	a := resyncAction{mount: m}
	if sharedMountID(m.rec.MountID) {
		a.users = f.byVolume[m.rec.Volume]
	}
	switch owner, owned := findOwner(m.rec, f.byID, f.byVolume); {
	case m.spare:
		a.step = skipSpare
	case !m.mine:
		a.step = leaveForeign
	case owned && m.task == nil:
		a.step, a.owner = adopt, owner
	case owned && m.view.shared && m.view.live():
		a.step = share
	case owned && owner.ID != "" && m.view.containerID == "" && m.view.live():
		// Its volume mount event was missed.
		a.step, a.owner = claimIt, owner
	case owned:
		// Named already, or a live container uses the volume but which
		// of its users this mount is for, no event said: it stays
		// unnamed.
		a.step = keep
	case m.task != nil && m.view.state == mounting, !m.rec.Since.IsZero() && now.Sub(m.rec.Since) < grace:
		// dockerd mounts before the container runs. If that start never
		// completes (the container failed, or stopped while secretd was
		// down) nobody else will look again.
		a.step, a.after = keepStarting, grace-now.Sub(m.rec.Since)+100*time.Millisecond
	default:
		a.step = wipeIt
	}
	return a
}

// resyncCounts are what a resync did, for its log line.
type resyncCounts struct{ kept, wiped, adopted int }

// resyncRun is one resync carrying out its plan: what it did, for its log
// line, the mounts still mounted, and what failed.
type resyncRun struct {
	c    *Controller
	n    resyncCounts
	live map[string]bool
	errs []error
}

// apply carries out a plan.
func (r *resyncRun) apply(plan []resyncAction) {
	c, n, live := r.c, &r.n, r.live
	for _, a := range plan {
		m := a.mount
		if a.step != dropTask {
			live[m.name] = true
		}
		switch a.step {
		case leaveForeign:
			c.cfg.Log.Warn("mount under the mount root is not secretd's: left as it is", "dir", m.dir)
		case adopt:
			n.kept++
			n.adopted++
			r.adopt(m.dir, m.rec, a.owner, a.users)
		case claimIt:
			n.kept++
			if s, ok := m.task.claim(a.owner.ID, identityOf(a.owner).dest(m.view.volume)); ok {
				c.root.claimed(s)
				c.identify(identityOf(a.owner))
			}
		case share:
			n.kept++
			for _, v := range m.task.setMembers(membersOf(m.rec.Volume, a.users)) {
				auditMount(c.cfg.Audit, v)
			}
		case keep:
			n.kept++
		case keepStarting:
			n.kept++
			time.AfterFunc(a.after, c.resyncReq.ask)
		case wipeIt:
			err := c.root.resyncWipe(m)
			if errors.Is(err, errNotLive) {
				continue // an Unmount wiped it meanwhile
			}
			if err != nil {
				r.errs = append(r.errs, err)
				continue
			}
			delete(live, m.name)
			r.errs = append(r.errs, c.root.removeRecord(m.name))
			n.wiped++
		case dropTask:
			// Wiped by hand, or by a failed Unmount that still unmounted.
			if m.task.drop() {
				c.tasks.remove(m.task)
			}
		}
	}
}

// findOwner finds the live container a mount belongs to: the one its
// record names, using the record's volume; or, when the record names no
// container (its mount event was not seen), the volume's only live user.
// A volume with several live users keeps the mount (owned) without an
// owner: it is one of theirs, and guessing which would misname it. A
// shared mount (Podman's) is every live user's: any keeps it, none owns
// it.
func findOwner(rec *taskRecord, byID map[string]container.Summary, byVolume map[string][]container.Summary) (container.Summary, bool) {
	if rec.Volume == "" {
		return container.Summary{}, false
	}
	if sharedMountID(rec.MountID) {
		return container.Summary{}, len(byVolume[rec.Volume]) > 0
	}
	if rec.ContainerID != "" {
		s, ok := byID[rec.ContainerID]
		if !ok {
			return container.Summary{}, false
		}
		for _, m := range s.Mounts {
			if m.Name == rec.Volume {
				return s, true
			}
		}
		return container.Summary{}, false
	}
	switch users := byVolume[rec.Volume]; len(users) {
	case 0:
		return container.Summary{}, false
	case 1:
		return users[0], true
	default:
		return container.Summary{}, true
	}
}

func alive(state string) bool {
	switch state {
	case container.StateRunning, container.StatePaused, container.StateRestarting, container.StateCreated:
		return true
	}
	return false
}

// bindListed binds the unsettled volumes the list shows in use, by the
// same rule as a Mount's lookup. Volumes recorded before declarations (or
// on-update) were bound, and those whose create event was missed, bind
// here, so their next Mount asks the engine nothing.
func (b *binding) bindListed(ctx context.Context, users map[string][]container.Summary) {
	for name, us := range users {
		v, ok := b.vols.get(name)
		if ok && v.Settled() {
			continue
		}
		if !ok {
			v = Volume{Name: name}
		}
		bctx, cancel := context.WithTimeout(ctx, bindTimeout)
		_, _, err := b.bindTo(bctx, name, us)
		cancel()
		if err != nil {
			// A volume its Mount binds says why there; one bound by an
			// earlier version may never be mounted again to say it.
			lvl := slog.LevelDebug
			if v.mountable() {
				lvl = slog.LevelWarn
			}
			b.log.Log(ctx, lvl, "volume not bound at resync", "volume", name, "err", err)
		}
	}
}

// adopt rebuilds the task of a mount made before a daemon restart, from the
// volume's record; the versions are those the store says now. users are a
// shared mount's live users, its members.
func (r *resyncRun) adopt(dir string, rec *taskRecord, s container.Summary, users []container.Summary) {
	c := r.c
	v, ok := c.vols.get(rec.Volume)
	var entries []declaration.Entry
	var err error
	if !ok || !v.Bound() {
		err = fmt.Errorf("volume %s has no bound declaration", rec.Volume)
	} else {
		// versions stay nil: the mount's content is whatever was current
		// before the restart, and the refresh below rewrites it.
		entries, err = v.Entries()
	}
	t := adoptedTask(rec, dir, identityOf(s), membersOf(rec.Volume, users), entries)
	if err != nil {
		c.cfg.Log.Warn("adopted mount left as it is", "container", t.view().who(), "mount", dir, "err", err)
	}
	if !c.tasks.claim(t) {
		return
	}
	c.cfg.Log.Info("mount adopted", "container", t.view().who(), "mount", dir)
	if err == nil && v.oneFile() {
		r.adoptFile(t)
		return
	}
	if err == nil {
		if _, _, err := c.refresh(t); err != nil {
			c.cfg.Log.Warn("adopted mount not refreshed", "container", t.view().who(), "mount", dir, "err", err)
		}
	}
}

// adoptFile learns which version an adopted one-file mount holds, without
// rewriting it: its container has the file's inode bound, and a rewrite
// would link a new one the container never sees and zero the one it
// reads (see deferToRestart). The version its entry resolves to now is
// tried first, then the older ones kept, newest first. A mount that holds
// none of them keeps its version unknown.
func (r *resyncRun) adoptFile(t *task) {
	c := r.c
	v := t.view()
	ctx := context.Background()
	for _, entries := range c.contents.fileCandidates(v.entries) {
		got, err := c.contents.files(ctx, entries, c.binding.contentFor(ctx, v.withEntries(entries), nil))
		same := false
		if err == nil {
			same, _ = tmpfs.Holds(v.dir, got.files)
		}
		wipeFiles(got.files)
		if same {
			t.held(got)
			return
		}
	}
	c.cfg.Log.Warn("adopted file bound at an absolute target holds no version kept: left as it is, its version unknown until its container restarts",
		"container", v.label(), "mount", v.dir)
}

// fileCandidates are the entries a one-file mount may have been filled
// from: as declared, then, for a stored secret or config it follows, each
// older version kept, newest first. A rendered template is tried as it
// renders now only: what it read then is not known.
func (s *contents) fileCandidates(entries []declaration.Entry) [][]declaration.Entry {
	out := [][]declaration.Entry{entries}
	if len(entries) != 1 || entries[0].Version != 0 {
		return out
	}
	sec, err := s.view(entries[0].Kind).Get(entries[0].Source)
	if err != nil || sec.Source != nil {
		return out
	}
	for i := len(sec.Versions) - 1; i >= 0; i-- {
		if ver := sec.Versions[i].Version; ver != sec.Current {
			e := entries[0]
			e.Version = ver
			out = append(out, []declaration.Entry{e})
		}
	}
	return out
}

func dirBase(dir string) string {
	for i := len(dir) - 1; i >= 0; i-- {
		if dir[i] == '/' {
			return dir[i+1:]
		}
	}
	return dir
}
