package controller

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/tmpfs"
)

// staging fills a spare with a volume's files when the volume's container
// is created, so that its Mount, which the container's start waits for,
// only checks that nothing changed meanwhile and hands the filled spare
// over. A container start gives the daemon tens to hundreds of
// milliseconds between the create and the Mount; on a host whose cores
// are busy with that start, a Mount that also decrypts and writes takes
// two to three times as long, and is as many times as likely to lose its
// core, as one that only checks (docs/benchmarks.md).
//
// A staged fill is never what decides which secrets a container gets: the
// Mount reads the volume's entries after its claim, as it always does, and
// uses the staged files only if the entries are the same and no secret
// they name was written since the fill read it (see unchanged). Otherwise
// it rewrites the staged mount from the store, as a rotation does.
//
// A staged spare holds plaintext that no container has: it stays owned by
// the spares (a resync neither adopts nor wipes it, and after a crash,
// having no record, it is wiped), and it is wiped when no Mount takes it
// within stagedTTL, when its volume is removed or regranted, and when the
// daemon stops.
type staging struct {
	spares *spares
	log    *slog.Logger
	ttl    time.Duration

	mu       sync.Mutex
	byVolume map[string]*stagedFill
	stopped  bool
	running  sync.WaitGroup
}

// stagedTTL is how long a staged fill waits for its Mount: far longer than
// a start takes from its create to its Mount, short enough that a
// container created and never started does not leave its secrets staged.
const stagedTTL = 10 * time.Second

// stagedFill is one volume's staged mount. Its fields are written by the
// fill before it is ready, and only read after.
type stagedFill struct {
	dir string
	// ready is set once the spare is filled; until then a Mount does not
	// take it, and dropped tells the fill to wipe it when done.
	ready, dropped bool
	timer          *time.Timer

	entries []declaration.Entry
	read    []stagedSecret
	// content is what the fill wrote, its files wiped.
	content content
}

// stagedSecret is a secret (or config) a staged fill read, as it was
// before the read: a write since changes its index.
type stagedSecret struct {
	kind     declaration.Kind
	name, id string
	index    uint64
}

func newStaging(s *spares, log *slog.Logger) *staging {
	return &staging{spares: s, log: log, ttl: stagedTTL, byVolume: map[string]*stagedFill{}}
}

// errNotStaged is why a volume was not staged; it is not an error of
// anything a user did, and the Mount does the work as before.
var errNotStaged = errors.New("not staged")

// stage fills a spare for volume's coming Mount, in the background.
func (c *Controller) stage(volume string) {
	f, ok := c.staging.begin(volume)
	if !ok {
		return
	}
	go func() {
		defer c.staging.running.Done()
		start := time.Now()
		err := c.fillStaged(f, volume)
		dir := f.dir
		switch ready := c.staging.finish(volume, f, err); {
		case ready:
			c.cfg.Log.Debug("volume staged", "volume", volume, "mount", dir, "duration", time.Since(start))
		case err != nil && !errors.Is(err, errNotStaged):
			// The Mount does the same work, and reports its failure.
			c.cfg.Log.Debug("volume not staged: its Mount fills it", "volume", volume, "err", err)
		}
	}()
}

// fillStaged is a Mount's steps 4, 6 and 7 ahead of time, for the secrets
// and configs a Mount would only read from the store: a driver secret's
// value and a template's rendering are each container's, and stay with
// the Mount.
func (c *Controller) fillStaged(f *stagedFill, volume string) error {
	v, ok := c.vols.get(volume)
	if !ok || !v.mountable() {
		return errNotStaged
	}
	entries, err := v.Entries()
	if err != nil || len(entries) == 0 {
		return errNotStaged
	}
	read, err := c.contents.stageable(entries)
	if err != nil {
		return err
	}
	if f.dir = c.spares.take(); f.dir == "" {
		return errNotStaged
	}
	in, err := c.binding.mountInput(context.Background(), volume, v, entries, nil)
	if err != nil {
		return err
	}
	got, err := c.contents.files(context.Background(), entries, in)
	defer wipeFiles(got.files)
	if err != nil {
		return err
	}
	if err := tmpfs.Fill(f.dir, got.files, tmpfs.Options{}); err != nil {
		c.spares.release(f.dir) // Fill unmounted it
		f.dir = ""
		return err
	}
	f.entries, f.read, f.content = entries, read, got
	f.content.files = nil
	return nil
}

// stageable returns the secrets and configs entries name, as they are
// now, when a Mount would take all of them from the store and none is a
// template; and an error otherwise, or when the store is locked.
func (s *contents) stageable(entries []declaration.Entry) ([]stagedSecret, error) {
	if s.store.Locked() {
		return nil, errNotStaged
	}
	var refs []stagedSecret
	for _, e := range entries {
		r := stagedSecret{kind: e.Kind, name: e.Source}
		if !slices.Contains(refs, r) {
			refs = append(refs, r)
		}
	}
	secs, err := s.current(refs)
	if err != nil {
		return nil, errNotStaged
	}
	for i, sec := range secs {
		if sec.Template != "" || sec.Source != nil {
			return nil, errNotStaged
		}
		refs[i].id, refs[i].index = sec.ID, sec.Index
	}
	return refs, nil
}

// unchanged reports whether a Mount whose entries are entries may take
// f's files as they are: the same entries, the store unlocked, and every
// secret they name at the index it had before the fill read it. A write
// after this check finds the Mount's task claimed, and reaches it as a
// rotation reaches any mount.
func (s *contents) unchanged(f *stagedFill, entries []declaration.Entry) bool {
	if !reflect.DeepEqual(entries, f.entries) || s.store.Locked() {
		return false
	}
	secs, err := s.current(f.read)
	if err != nil {
		return false
	}
	for i, sec := range secs {
		if sec.ID != f.read[i].id || sec.Index != f.read[i].index {
			return false
		}
	}
	return true
}

// current reads the secrets and configs refs name, in refs' order: one
// store read for the secrets and one for the configs.
func (s *contents) current(refs []stagedSecret) ([]store.Secret, error) {
	out := make([]store.Secret, len(refs))
	for _, kind := range []declaration.Kind{declaration.Secret, declaration.Config} {
		var names []string
		var at []int
		for i, r := range refs {
			if r.kind == kind {
				names, at = append(names, r.name), append(at, i)
			}
		}
		if len(names) == 0 {
			continue
		}
		secs, err := s.view(kind).GetNames(names)
		if err != nil {
			return nil, err
		}
		for k, i := range at {
			out[i] = secs[k]
		}
	}
	return out, nil
}

// begin reserves volume's staged fill, unless one exists, the daemon is
// stopping, or no spare is ready (the Mounts need those more).
func (s *staging) begin(volume string) (*stagedFill, bool) {
	if s.spares.ready() == 0 {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || s.byVolume[volume] != nil {
		return nil, false
	}
	f := &stagedFill{}
	s.byVolume[volume] = f
	s.running.Add(1)
	return f, true
}

// finish ends a fill: it is ready for the Mount (finish reports true),
// or wiped if it failed or something dropped it meanwhile.
func (s *staging) finish(volume string, f *stagedFill, err error) bool {
	s.mu.Lock()
	if err == nil && !f.dropped && !s.stopped {
		f.ready = true
		f.timer = time.AfterFunc(s.ttl, func() {
			if s.drop(volume, f) {
				s.log.Debug("staged mount wiped: no Mount took it in time", "volume", volume, "mount", f.dir)
			}
		})
		s.mu.Unlock()
		return true
	}
	if s.byVolume[volume] == f {
		delete(s.byVolume, volume)
	}
	s.mu.Unlock()
	s.wipe(f)
	return false
}

// take hands volume's staged fill to its Mount, if one is ready; the
// spare stays owned until the Mount's claim releases it. A fill still
// under way is dropped: the Mount does not wait for it.
func (s *staging) take(volume string) *stagedFill {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.byVolume[volume]
	if f == nil {
		return nil
	}
	delete(s.byVolume, volume)
	if !f.ready {
		f.dropped = true
		return nil
	}
	f.timer.Stop()
	return f
}

// drop wipes volume's staged fill (only f, when f is set): its volume
// was removed or regranted, or its time ran out. It reports whether it
// wiped one.
func (s *staging) drop(volume string, f *stagedFill) bool {
	s.mu.Lock()
	cur := s.byVolume[volume]
	if cur == nil || (f != nil && cur != f) {
		s.mu.Unlock()
		return false
	}
	delete(s.byVolume, volume)
	if !cur.ready {
		cur.dropped = true
		s.mu.Unlock()
		return false
	}
	cur.timer.Stop()
	s.mu.Unlock()
	s.wipe(cur)
	return true
}

// stop waits for the fills under way and wipes every staged mount: the
// daemon is stopping.
func (s *staging) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.running.Wait()
	s.mu.Lock()
	left := s.byVolume
	s.byVolume = map[string]*stagedFill{}
	s.mu.Unlock()
	for _, f := range left {
		f.timer.Stop()
		s.wipe(f)
	}
}

// wipe unmounts a staged fill no Mount took, and gives up its spare.
func (s *staging) wipe(f *stagedFill) {
	if f.dir == "" {
		return
	}
	if _, err := tmpfs.Wipe(f.dir); err != nil {
		// Released all the same: the next resync finds a spare with no
		// record, and wipes it.
		s.log.Warn("staged mount not wiped", "mount", f.dir, "err", err)
	}
	s.spares.release(f.dir)
}
