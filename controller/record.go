package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/secretd/secretd/internal/atomicfile"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/mountroot"
	"github.com/secretd/secretd/tmpfs"
)

// taskRecord is what secretd writes next to each mount, before filling it:
// which mount ID, volume and container the mount is for. The engine does
// not report a plugin volume's path (Mounts[].Source is empty), so after a
// crash this is the only link from a mount back to its container.
//
// A record is named for its mount's directory, NAME.task beside NAME: a
// directory is named for its mount ID only when it was mounted on demand,
// while a spare gets its name before any container claims it.
type taskRecord struct {
	MountID     string    `json:"mount_id"`
	Volume      string    `json:"volume"`
	ContainerID string    `json:"container_id,omitempty"`
	Since       time.Time `json:"since"`
}

const recordSuffix = mountroot.RecordSuffix

// mountRoot is the directory that holds every mount, each beside its task
// record, and what is done to them on disk: records written, read and
// removed, mounts wiped, leftovers cleaned.
type mountRoot struct {
	path    string
	log     *slog.Logger
	metrics Metrics
	audit   *audit.Logger
	// tasks and spares hold the mounts under it, and staging the spares
	// filled ahead of their Mount.
	tasks   *taskTable
	spares  *spares
	staging *staging
}

func (r *mountRoot) recordPath(dirName string) string {
	return filepath.Join(r.path, dirName+recordSuffix)
}

// saveRecord writes the task's record. It does not fsync: a record only
// has to outlive a crash of the process, which the page cache does, while
// a crash of the host takes every mount with it and leaves nothing for a
// record to describe (resync wipes records it cannot read). The mount root
// is normally on tmpfs under /run, where a sync is free, but not
// everywhere, and this is on the Mount path.
//
// A Mount's record is new, so it is created in place (see createRecord);
// a record that exists, rewritten when a task learns its container, is
// replaced atomically.
func (r *mountRoot) saveRecord(t taskView) error {
	b, err := json.Marshal(taskRecord{MountID: t.mountID, Volume: t.volume, ContainerID: t.containerID, Since: t.since})
	if err != nil {
		return err
	}
	p := r.recordPath(dirBase(t.dir))
	err = createRecord(p, b)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(r.path, 0o700); err == nil {
			err = createRecord(p, b)
		}
	}
	if errors.Is(err, fs.ErrExist) {
		return atomicfile.WriteUnsynced(p, b)
	}
	return err
}

// createRecord writes a record that does not exist yet, with three system
// calls where a replace through a temporary file and a rename takes twice
// as many (and a rename on a journalled file system waits for its
// journal). Crashing in the middle leaves a record that does not parse,
// beside a mount not filled yet, whose Mount never returned: resync wipes
// both, as it would an unrecorded mount. Nothing else reads the record of
// a task in the table.
func createRecord(p string, b []byte) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &fs.PathError{Op: "create", Path: p, Err: err}
	}
	n, err := unix.Write(fd, b)
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if cerr := unix.Close(fd); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

// loadRecord reads the record of the mount at MOUNT-ROOT/dirName. Records
// written before spares existed carry the mount ID that is also their name.
func (r *mountRoot) loadRecord(dirName string) (*taskRecord, error) {
	b, err := os.ReadFile(r.recordPath(dirName))
	if err != nil {
		return nil, err
	}
	var rec taskRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	if !mountIDRE.MatchString(rec.MountID) {
		return nil, fmt.Errorf("task record %s names no valid mount ID", dirName)
	}
	return &rec, nil
}

// hasRecord reports whether a task record lies beside MOUNT-ROOT/dirName,
// readable or not.
func (r *mountRoot) hasRecord(dirName string) bool {
	_, err := os.Lstat(r.recordPath(dirName))
	return err == nil
}

func (r *mountRoot) removeRecord(dirName string) error {
	err := os.Remove(r.recordPath(dirName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// removeTemps deletes half-written records a crash left behind. Before
// the first resync no Mount can be under way (the plugin socket is not
// served yet), so all go; later a young one may be a Mount's write.
func (r *mountRoot) removeTemps(all bool) {
	tmps, _ := filepath.Glob(filepath.Join(r.path, "*"+recordSuffix+".tmp"))
	for _, t := range tmps {
		if st, err := os.Stat(t); err == nil && (all || time.Since(st.ModTime()) > 10*time.Second) {
			os.Remove(t)
		}
	}
}

// records lists the names of the mount directories that have a record.
func (r *mountRoot) records() []string {
	entries, _ := os.ReadDir(r.path)
	var out []string
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), recordSuffix); ok && !e.IsDir() {
			out = append(out, id)
		}
	}
	return out
}

func (r *mountRoot) dir(mountID string) string { return filepath.Join(r.path, mountID) }

// recordedDir returns the directory of the volume's mount with this ID
// from the records on disk, and the volume the record names; or the
// directory named for the mount and no volume when no record names it.
// Podman's one mount ID is looked up with its volume, as every volume's
// mount has it.
func (r *mountRoot) recordedDir(volume, mountID string) (dir, recVolume string) {
	if sharedMountID(mountID) {
		for _, name := range r.records() {
			if rec, err := r.loadRecord(name); err == nil && rec.MountID == mountID && rec.Volume == volume {
				return r.dir(name), rec.Volume
			}
		}
		return r.dir(sharedDirName(volume)), ""
	}
	if rec, err := r.loadRecord(mountID); err == nil && rec.MountID == mountID {
		return r.dir(mountID), rec.Volume
	}
	for _, name := range r.records() {
		if rec, err := r.loadRecord(name); err == nil && rec.MountID == mountID {
			return r.dir(name), rec.Volume
		}
	}
	return r.dir(mountID), ""
}

// wipe wipes the mount at dir, of the task v (zero when no task holds
// it): the trail gets a wipe for each container that read it.
func (r *mountRoot) wipe(dir string, v taskView) error {
	v = v.wiped()
	container := v.who()
	res, err := tmpfs.Wipe(dir)
	if err != nil {
		r.metrics.Error("unmount", err)
		r.log.Error("wipe failed", "container", container, "mount", dir, "err", err)
		return fmt.Errorf("wipe secrets at %s: %w", dir, err)
	}
	if res.Lazy {
		r.log.Warn("mount was busy: detached lazily after zeroing", "container", container, "mount", dir)
	}
	r.log.Info("secrets wiped", "container", container, "mount", dir)
	for _, w := range v.containers() {
		r.audit.Log(audit.Event{Event: audit.ContainerWipe, Container: w.name, ContainerID: w.containerID, Volume: w.volume, Mount: dir})
	}
	return nil
}

// removeStrayDirs deletes directories under the mount root that are
// secretd's mounts but hold no container's (left by a crash between mkdir
// and mount, or after a lazy detach). A directory that is not secretd's
// own, by its name or a task record beside it, is left alone: the daemon
// checked the mount root at start, and whatever appeared since is someone
// else's.
func (r *mountRoot) removeStrayDirs(entries []os.DirEntry, live, inUse map[string]bool) error {
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	var errs []error
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() || live[n] || inUse[n] {
			continue
		}
		if !mountroot.MountDir(n, names[n+mountroot.RecordSuffix]) {
			r.log.Warn("directory under the mount root is not secretd's: left as it is", "dir", r.dir(n))
			continue
		}
		if _, err := tmpfs.Wipe(r.dir(e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// claimed saves the record of a task that just learned its container, so
// a resync after a crash finds it.
func (r *mountRoot) claimed(s taskView) {
	if err := r.saveRecord(s); err != nil {
		r.log.Warn("task record not updated", "mount", s.dir, "err", err)
	}
}

// claimMount is step 3 of a Mount: a task for the mount ID enters the
// table, with the directory of the volume's staged fill when one is ready
// (returned too: see staging), else of a spare when one is ready.
func (r *mountRoot) claimMount(mountID, volume string, owner *container.Summary, ph *phases) (*task, *stagedFill, error) {
	staged := r.staging.take(volume)
	var dir string
	if staged != nil {
		dir = staged.dir
	} else {
		dir = r.spares.take()
	}
	ph.spare, ph.staged = dir != "", staged != nil
	switch {
	case ph.spare:
	case sharedMountID(mountID):
		dir = r.dir(sharedDirName(volume))
	default:
		dir = r.dir(mountID)
	}
	var o *identity
	if owner != nil {
		id := identityOf(*owner)
		o = &id
	}
	t := newTask(mountID, volume, dir, o)
	if !r.tasks.claim(t) {
		switch {
		case staged != nil:
			r.staging.wipe(staged) // filled: no spare to give back
		case ph.spare:
			r.spares.putBack(dir)
		}
		if sharedMountID(mountID) {
			return nil, nil, fmt.Errorf("volume %s is already mounted for Podman, which mounts a volume once for all its containers: "+
				"if no container of it runs, run 'podman volume unmount %s' and start again", volume, volume)
		}
		return nil, nil, fmt.Errorf("mount ID %s is already mounted", mountID)
	}
	if ph.spare {
		r.spares.release(dir) // the task holds it now
	}
	return t, staged, nil
}

// undoMount takes back a failed Mount's steps: the spare it filled, its
// place in the table, its record.
func (r *mountRoot) undoMount(t *task, spare bool, err error) error {
	if spare {
		// A spare Fill refused (or never saw) is still mounted, and its
		// directory is not named for this mount: nothing else would ever
		// remove it.
		if _, werr := tmpfs.Wipe(t.dir); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	r.tasks.remove(t)
	r.removeRecord(dirBase(t.dir))
	t.abandon()
	return err
}

// found describes each mount: the spares are read before the task table,
// as a spare passing to a task is always in one of them (see spares), and
// both after the mounts were listed, so a mount listed is a spare's or a
// task's (Mount claims its task before it mounts or fills anything).
func (r *mountRoot) found(mounts []string) []foundMount {
	spare := r.spares.ownedNames()
	byDir := map[string]*task{}
	for _, t := range r.tasks.all() {
		byDir[dirBase(t.dir)] = t
	}
	out := make([]foundMount, 0, len(mounts))
	for _, dir := range mounts {
		m := foundMount{dir: dir, name: dirBase(dir), rec: &taskRecord{}}
		m.spare, m.task = spare[m.name], byDir[m.name]
		if m.task != nil {
			m.view, m.mine = m.task.view(), true
			m.rec = &taskRecord{MountID: m.view.mountID, Volume: m.view.volume, ContainerID: m.view.containerID, Since: m.view.since}
		} else if !m.spare {
			m.mine = mountroot.MountDir(m.name, r.hasRecord(m.name))
			if r, err := r.loadRecord(m.name); err == nil {
				m.rec = r
			}
		}
		out = append(out, m)
	}
	return out
}

// tableNow is the task table as found mounts, for the tasks' drop.
func (r *mountRoot) tableNow() []foundMount {
	var out []foundMount
	for _, t := range r.tasks.all() {
		v := t.view()
		out = append(out, foundMount{dir: v.dir, name: dirBase(v.dir), mine: true, task: t, view: v})
	}
	return out
}

// dirsInUse names the mount root's directories that a task or a spare
// holds: one may be between its mkdir and its mount, or its record and
// its mount, and must not be taken for a leftover.
func (r *mountRoot) dirsInUse() map[string]bool {
	in := r.spares.ownedNames() // before the tasks, as in Resync
	for _, t := range r.tasks.all() {
		in[dirBase(t.dir)] = true
	}
	return in
}

// cleanMountRoot removes what no mount in live needs: stray directories,
// half-written records, and the records of mounts gone.
//
// The directory is read before the spares and the table, as in Resync: a
// spare made or a Mount claimed after the read is not in it, and one made
// before is in use by the time it is asked.
func (r *mountRoot) cleanMountRoot(live map[string]bool, first bool) []error {
	entries, err := os.ReadDir(r.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return []error{err}
	}
	records := r.records()
	inUse := r.dirsInUse()
	errs := []error{r.removeStrayDirs(entries, live, inUse)}
	r.removeTemps(first)
	for _, name := range records {
		if !live[name] && !inUse[name] {
			errs = append(errs, r.removeRecord(name))
		}
	}
	return errs
}

// resyncWipe wipes a mount no live container holds, and its task; it waits
// for a rotation writing the task.
func (r *mountRoot) resyncWipe(m foundMount) error {
	r.log.Debug("resync wipes a mount no live container holds", "mount", m.dir, "record_volume", m.rec.Volume,
		"record_container", m.rec.ContainerID, "mount_id", m.rec.MountID, "in_table", m.task != nil)
	if m.task == nil {
		return r.wipe(m.dir, taskView{volume: m.rec.Volume})
	}
	err := m.task.wipe(func(v taskView) error { return r.wipe(m.dir, v) })
	if err == nil {
		r.tasks.remove(m.task)
	}
	return err
}
