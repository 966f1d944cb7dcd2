package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/tmpfs"
)

// A task is one mount of secrets into one container start. It owns its
// state: every field is written here, by the methods below, under the
// task's one mutex. A step that changes the mount's content (fill,
// refresh, wipe) marks the task busy for its duration and does its I/O
// without holding the mutex, so a reader (ps, an event, a resync) never
// waits on a disk or a secret source, while a second content step waits
// for the first: an older file set never lands after a newer one, and
// nothing writes a mount being wiped. See doc.go for the life of a task.

// taskState is where a task is in its life.
type taskState int

const (
	// mounting: Mount claimed the mount ID and is building the tmpfs; the
	// claim comes first so `secret rm` cannot slip in between.
	mounting taskState = iota
	// mounted: the tmpfs holds the task's files.
	mounted
	// unmounting: Unmount (or a resync) is wiping it, or a wipe failed and
	// may be tried again; nothing writes it any more.
	unmounting
	// gone: the task left the table; its mount was wiped, or never built.
	gone
)

func (s taskState) String() string {
	switch s {
	case mounting:
		return "mounting"
	case mounted:
		return "mounted"
	case unmounting:
		return "unmounting"
	case gone:
		return "gone"
	}
	return "unknown"
}

// moves are the legal transitions of a task's state.
var moves = map[taskState][]taskState{
	mounting:   {mounted, gone},    // filled, or the Mount failed
	mounted:    {unmounting, gone}, // a wipe began, or the tmpfs vanished
	unmounting: {unmounting, gone}, // a failed wipe is tried again
	gone:       nil,                // final
}

// errNotLive reports a task that left the table before a step could run.
var errNotLive = errors.New("the mount is no longer in the task table")

// taskView is a task's fields: the task holds one, and readers get a copy
// (view). Slices are replaced, never changed in place, so a copy shares
// them safely.
type taskView struct {
	// mountID, volume, dir and since are fixed when the task is made.
	mountID, volume, dir string
	since                time.Time

	state taskState
	// containerID is "" until the engine's volume mount event, a resync
	// or an adoption names the container; name and image come from its
	// start event or a resync. dest is where the container mounts the
	// volume, from the same mount event, lookup or resync; "" until then.
	containerID, name, image string
	dest                     string
	// shared marks a mount that serves every container of its volume at
	// once (Podman's, see PodmanMountID). Such a task never has a
	// containerID: its containers are its members, the running users of
	// its volume, as the start and die events and each resync say.
	shared  bool
	members []member
	// joined: a member was ever named, so the audit trail has the mount;
	// last is the member that left last, whom the trail names at the wipe
	// when none is left (its die event came before the Unmount).
	joined  bool
	last    member
	entries []declaration.Entry
	// versions and ids hold what is mounted for each entry, by index; nil
	// when the content may not match entries (adopted after a restart, or
	// entries changed live), so the next refresh rewrites it.
	versions []int
	ids      []string
	// reads holds, for each entry rendered from a template, what the
	// rendering read (rendered says which entries are templates); a
	// rotation of any of those renders it again.
	reads    [][]readRef
	rendered []bool
}

// task is one mount; see above. Outside this file it is read through
// view, except for mountID, volume, dir and since, which never change.
type task struct {
	mu sync.Mutex
	// idle is signalled (with mu) when a content step ends.
	idle sync.Cond
	busy bool
	taskView
}

// newTask is the task of a Mount under way: mounting, and busy until its
// fill. owner, when known, is the container the Mount is for.
func newTask(mountID, volume, dir string, owner *identity) *task {
	t := &task{busy: true, taskView: taskView{mountID: mountID, volume: volume, dir: dir, since: time.Now().UTC(), state: mounting,
		shared: sharedMountID(mountID)}}
	t.idle.L = &t.mu
	switch {
	case owner != nil && t.shared:
		t.members, t.joined = []member{memberOf(*owner, volume)}, true
	case owner != nil:
		t.containerID, t.name, t.image = owner.ID, owner.Name, owner.Image
		t.dest = owner.dest(volume)
	}
	return t
}

// adoptedTask is the task of a mount made before a daemon restart, found
// by a resync: mounted, with versions unknown until its first refresh.
// owner.ID is "" when the mount is one of its volume's users' but which
// is not known. A shared mount takes users, its volume's running users,
// as its members instead: they were audited when they joined, before the
// restart.
func adoptedTask(rec *taskRecord, dir string, owner identity, users []member, entries []declaration.Entry) *task {
	since := rec.Since
	if since.IsZero() {
		since = time.Now().UTC()
	}
	t := &task{taskView: taskView{mountID: rec.MountID, volume: rec.Volume, dir: dir, since: since, state: mounted, entries: entries}}
	t.idle.L = &t.mu
	if sharedMountID(rec.MountID) {
		t.shared, t.members, t.joined = true, users, true
		return t
	}
	t.containerID, t.image = owner.ID, owner.Image
	if owner.ID != "" {
		t.name, t.dest = owner.Name, owner.dest(rec.Volume)
	}
	return t
}

// view returns a copy of the task's fields.
func (t *task) view() taskView {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.taskView
}

// transition moves the task from one state to another; t.mu held. It
// refuses a task not in from, and a move the life of a task does not have.
func (t *task) transition(from, to taskState) error {
	if t.state != from {
		return fmt.Errorf("mount %s is %s, not %s", t.mountID, t.state, from)
	}
	if !slices.Contains(moves[from], to) {
		return fmt.Errorf("mount %s cannot go from %s to %s", t.mountID, from, to)
	}
	t.state = to
	return nil
}

// acquire waits until no content step is under way, then begins one if
// the task is in state want; it returns the task as it is then.
func (t *task) acquire(want ...taskState) (taskView, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for t.busy {
		t.idle.Wait()
	}
	if !slices.Contains(want, t.state) {
		return t.taskView, false
	}
	t.busy = true
	return t.taskView, true
}

// release ends a content step, after moving the task from one state to
// another when from differs from to, and applying set (which may be nil).
func (t *task) release(from, to taskState, set func(*taskView)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.idle.Broadcast()
	t.busy = false
	if set != nil {
		set(&t.taskView)
	}
	if from == to {
		return nil
	}
	return t.transition(from, to)
}

// declare gives a Mount's task its entries, read after its claim; the
// Mount owns the task, which is busy.
func (t *task) declare(entries []declaration.Entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.entries = slices.Clone(entries)
}

// fill writes c's files as how says (a new tmpfs, a spare, a staged fill
// to rewrite, or nothing for a staged fill that is current), records what
// the mount holds and ends the Mount: the task is mounted and no longer
// busy.
func (t *task) fill(c content, how fillHow) error {
	var err error
	switch how {
	case fillNew:
		err = tmpfs.Mount(t.dir, c.files, tmpfs.Options{})
	case fillSpare:
		err = tmpfs.Fill(t.dir, c.files, tmpfs.Options{})
	case fillStaged:
		err = tmpfs.Update(t.dir, c.files)
	}
	if err != nil {
		return fmt.Errorf("mount secrets: %w", err)
	}
	return t.release(mounting, mounted, func(v *taskView) { v.versions, v.ids, v.reads, v.rendered = c.versions, c.ids, c.reads, c.rendered })
}

// fillHow is how step 7 of a Mount writes a task's files.
type fillHow int

const (
	fillNew    fillHow = iota // mount a new tmpfs
	fillSpare                 // fill an empty spare
	fillStaged                // rewrite a staged fill that is out of date (see staging)
	keepStaged                // nothing: the staged fill is the mount
)

// abandon ends a Mount that failed: the task leaves the table's life.
func (t *task) abandon() {
	t.release(mounting, gone, nil)
}

// content is what a task's entries resolve to now: the files with their
// versions and secret IDs by entry, and what each rendering read.
type content struct {
	files    []tmpfs.File
	versions []int
	ids      []string
	reads    [][]readRef
	rendered []bool
}

// refresh rewrites the mount with what read returns for it, if any
// version differs from what is mounted. It waits for a content step under
// way, and does nothing to a task that is not mounted (the Mount failed or
// the container stopped meanwhile). It returns the task as written and
// whether the files changed.
func (t *task) refresh(read func(taskView) (content, error), log *slog.Logger) (taskView, bool, error) {
	v, ok := t.acquire(mounted)
	if !ok {
		return v, false, nil
	}
	set, changed, err := t.rewrite(v, read, log)
	if rerr := t.release(mounted, mounted, set); rerr != nil && err == nil {
		err = rerr
	}
	return t.view(), changed, err
}

// rewrite is refresh's work on a busy task; set records what was mounted.
func (t *task) rewrite(v taskView, read func(taskView) (content, error), log *slog.Logger) (set func(*taskView), changed bool, err error) {
	c, err := read(v)
	defer wipeFiles(c.files)
	if err != nil {
		return nil, false, err
	}
	set = func(w *taskView) { w.versions, w.ids, w.reads, w.rendered = c.versions, c.ids, c.reads, c.rendered }
	if v.versions != nil && slices.Equal(c.versions, v.versions) && slices.Equal(c.ids, v.ids) && sameReads(c.reads, v.reads) {
		return nil, false, nil
	}
	if v.older(c) {
		// A rotation's value that a newer one (or a Mount) overtook:
		// the mount keeps the newer version.
		return nil, false, nil
	}
	if v.versions == nil {
		// Adopted after a restart, its versions unknown: a mount that
		// already shows these files is left alone, as rewriting it would
		// zero the files its container may be reading.
		same, err := tmpfs.Holds(v.dir, c.files)
		if same {
			return set, false, nil
		}
		if err != nil {
			log.Debug("adopted mount not readable as laid out: rewriting it", "mount", v.dir, "err", err)
		}
	}
	start := time.Now()
	if err := tmpfs.Update(v.dir, c.files); err != nil {
		return nil, false, err
	}
	log.Info("secrets updated in place", "container", v.name, "mount", v.dir, "duration", time.Since(start))
	return set, true, nil
}

// older reports whether c would put back an older version of a secret
// than the mount holds for the same entry: the same secret (by ID),
// followed, at a lower version.
func (v taskView) older(c content) bool {
	if v.versions == nil {
		return false
	}
	for i, e := range v.entries {
		if e.Version == 0 && i < len(v.versions) && i < len(v.ids) && i < len(c.versions) && i < len(c.ids) &&
			c.ids[i] == v.ids[i] && c.versions[i] < v.versions[i] {
			return true
		}
	}
	return false
}

// redeclare changes what a running mount holds, for a live grant or
// revoke; the refresh that follows rewrites it.
func (t *task) redeclare(entries []declaration.Entry) {
	v, ok := t.acquire(mounted, unmounting)
	if !ok {
		return // gone: nothing to change
	}
	t.release(v.state, v.state, func(v *taskView) {
		v.entries, v.versions, v.ids, v.reads, v.rendered = slices.Clone(entries), nil, nil, nil, nil
	})
}

// wipe runs do (which wipes the mount) once no content step is under way,
// and marks the task gone when it succeeds; a failed wipe leaves it
// unmounting, to be tried again. It returns errNotLive, having done
// nothing, for a task already gone.
func (t *task) wipe(do func(taskView) error) error {
	v, ok := t.acquire(mounted, unmounting)
	if !ok {
		return errNotLive
	}
	t.mu.Lock()
	err := t.transition(v.state, unmounting)
	v = t.taskView
	t.mu.Unlock()
	if err == nil {
		err = do(v)
	}
	if err != nil {
		t.release(unmounting, unmounting, nil)
		return err
	}
	return t.release(unmounting, gone, nil)
}

// drop marks gone a mounted task whose tmpfs vanished (wiped by hand, or
// by a failed Unmount that still unmounted), unless a step is under way:
// the next resync looks again. It reports whether it did.
func (t *task) drop() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.busy && t.transition(mounted, gone) == nil
}

// claim gives a mounted task without a container this one, which mounts
// its volume at dest ("" when not known); false if it has one.
func (t *task) claim(containerID, dest string) (taskView, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shared || t.containerID != "" || t.state != mounted {
		return taskView{}, false
	}
	t.containerID = containerID
	if dest != "" {
		t.dest = dest
	}
	return t.taskView, true
}

// identify gives the container's name and image to a task of that
// container that has no name yet, and reports whether it did: a task is
// named once.
func (t *task) identify(o identity) (taskView, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.containerID != o.ID || t.name != "" {
		return taskView{}, false
	}
	t.name, t.image = o.Name, o.Image
	if d := o.dest(t.volume); d != "" {
		t.dest = d
	}
	return t.taskView, true
}

// held records which versions a mount holds when a refresh could not be
// used to learn them (see adoptFile).
func (t *task) held(c content) {
	v, ok := t.acquire(mounted)
	if !ok {
		return
	}
	t.release(v.state, v.state, func(w *taskView) { w.versions, w.ids, w.reads, w.rendered = c.versions, c.ids, c.reads, c.rendered })
}

// rename follows a rename of the task's container.
func (t *task) rename(containerID, name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.containerID == containerID {
		t.name = name
	}
	if i := slices.IndexFunc(t.members, func(m member) bool { return m.id == containerID }); i >= 0 {
		ms := slices.Clone(t.members)
		ms[i].name = name
		t.members = ms
	}
}

// live reports whether the task holds files a container may read.
func (v taskView) live() bool { return v.state == mounted }

// named returns v with the container it is for, when no event has named it.
func (v taskView) named(id, name string) taskView {
	v.containerID, v.name = id, name
	return v
}

// label names a task's container, or says which volume it mounts while
// the container is not known yet. A shared mount's view names a
// container only once containers() has split it, a view per container.
func (v taskView) label() string {
	if v.name != "" {
		return v.name
	}
	if v.containerID != "" {
		return shortID(v.containerID)
	}
	return "(starting, volume " + v.volume + ")"
}

// target is where the container reads entry e of the task: its target
// in the volume, or, for a one-file volume, where the container mounts
// that file, the absolute path its declaration gave.
func (v taskView) target(e declaration.Entry, oneFile bool) string {
	if oneFile && v.dest != "" {
		return v.dest
	}
	return e.Target
}

// apiTask is the task as `secretd ps` shows it; oneFile tells a one-file
// volume.
func (v taskView) apiTask(oneFile bool) api.Task {
	out := api.Task{
		ContainerID: v.containerID, ContainerName: v.name, Volume: v.volume, MountID: v.mountID,
		Mount: v.dir, Since: v.since,
	}
	for i, e := range v.entries {
		ts := api.TaskSecret{Kind: string(e.Kind), Name: e.Source, Target: v.target(e, oneFile), Pinned: e.Version != 0}
		if i < len(v.versions) {
			ts.Version = v.versions[i]
		}
		if i < len(v.ids) {
			ts.ID = v.ids[i]
		}
		if i < len(v.reads) {
			for _, r := range v.reads[i] {
				ts.Reads = append(ts.Reads, r.String())
			}
		}
		out.Secrets = append(out.Secrets, ts)
	}
	return out
}

// wipeFiles zeroes decrypted files once they are written.
func wipeFiles(files []tmpfs.File) {
	for _, f := range files {
		clear(f.Data)
	}
}

// sameReads reports whether two mounts' renderings read the same versions.
func sameReads(a, b [][]readRef) bool {
	return slices.EqualFunc(a, b, func(x, y []readRef) bool { return slices.Equal(x, y) })
}

// join adds containers to the members of a mounted shared task. It returns
// the task as each container new to it reads it, for the audit trail.
func (t *task) join(ms ...member) []taskView {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.shared || t.state != mounted {
		return nil
	}
	var added []member
	for _, m := range ms {
		if !slices.ContainsFunc(t.members, func(x member) bool { return x.id == m.id }) &&
			!slices.ContainsFunc(added, func(x member) bool { return x.id == m.id }) {
			added = append(added, m)
		}
	}
	if len(added) == 0 {
		return nil
	}
	t.members = append(slices.Clone(t.members), added...)
	t.joined = true
	v := t.taskView
	v.members = added
	return v.containers()
}

// leave takes a container out of a shared task's members.
func (t *task) leave(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i := slices.IndexFunc(t.members, func(m member) bool { return m.id == id }); i >= 0 {
		t.last = t.members[i]
		t.members = slices.Delete(slices.Clone(t.members), i, i+1)
	}
}

// setMembers makes ms the members of a mounted shared task, as a resync
// finds them; it returns the task as each container new to it reads it.
func (t *task) setMembers(ms []member) []taskView {
	t.mu.Lock()
	if t.shared && t.state == mounted {
		t.members = slices.DeleteFunc(slices.Clone(t.members), func(m member) bool {
			gone := !slices.ContainsFunc(ms, func(x member) bool { return x.id == m.id })
			if gone {
				t.last = m
			}
			return gone
		})
	}
	t.mu.Unlock()
	return t.join(ms...)
}

// wiped returns the view as the audit trail names it at its wipe: a shared
// mount whose members all left, by the last to leave.
func (v taskView) wiped() taskView {
	if v.shared && len(v.members) == 0 && v.last.id != "" {
		v.members = []member{v.last}
	}
	return v
}

// containers returns the view once for each container that reads the
// mount: a shared mount's members each as if the mount were theirs alone,
// any other mount (or a shared one no container is known to read) as it
// is.
func (v taskView) containers() []taskView {
	if !v.shared || len(v.members) == 0 {
		return []taskView{v}
	}
	out := make([]taskView, len(v.members))
	for i, m := range v.members {
		w := v
		w.containerID, w.name, w.image, w.dest = m.id, m.name, m.image, m.dest
		out[i] = w
	}
	return out
}

// who names the containers that read the mount, for the log.
func (v taskView) who() string {
	views := v.containers()
	names := make([]string, len(views))
	for i, w := range views {
		names[i] = w.name
	}
	return strings.Join(names, ",")
}

// withEntries returns v with other entries, for content it may hold.
func (v taskView) withEntries(entries []declaration.Entry) taskView {
	v.entries = entries
	return v
}

// withMembers returns v of a shared mount with the members a container
// list names, when no event named any.
func (v taskView) withMembers(ms []member) taskView {
	v.members = ms
	return v
}
