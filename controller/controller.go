package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/audit"
	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/store"
	"github.com/secretd/secretd/tmpfs"
)

// Config is what a Controller works with.
type Config struct {
	Store *store.Store
	// Engine may be nil only in tests that never mount label declarations.
	Engine     Engine
	EngineHost string
	Volumes    Volumes
	MountRoot  string
	DriverName string
	Log        *slog.Logger
	// Grace protects mounts younger than this from resync: dockerd calls
	// Mount before the container shows as running.
	Grace time.Duration
	// Actions carries out on-update signals and restarts; nil disables them.
	Actions Actions
	// OwnersDir caches which container each volume was mounted for, so a
	// Mount can proceed while the engine does not answer (dockerd at boot);
	// empty keeps the cache in memory only.
	OwnersDir string
	// OverridesFile keeps live grants and revokes across daemon restarts;
	// empty keeps them in memory only.
	OverridesFile string
	// Metrics hears of mounts, rotations, events, resyncs and failures;
	// nil counts nothing.
	Metrics Metrics
	// Audit receives the trail of mounts, wipes, rotations and refused
	// mounts; nil keeps none.
	Audit *audit.Logger
	// Spares is how many empty mounts KeepSpares keeps ready for Mounts to
	// fill; zero makes every mount on demand.
	Spares int
	// MaxMountSize caps the plaintext bytes one mount holds (all its
	// files); zero means no cap.
	MaxMountSize int64
}

// Controller keeps the task table. It is safe for concurrent use.
type Controller struct {
	cfg Config

	mu     sync.Mutex
	tasks  map[string]*task // by mount ID
	spares spares

	mountTimes latencies
	eventLag   latencies

	engineMu  sync.Mutex
	engineErr error
	resyncs   uint64

	rotations atomic.Uint64
	overrides *overrides
	owners    *owners
	births    *births

	// resyncReq asks Run for a resync; buffered so requests coalesce.
	resyncReq chan struct{}
}

// resyncAfter asks for a resync once d has passed.
func (c *Controller) resyncAfter(d time.Duration) {
	time.AfterFunc(d, func() {
		select {
		case c.resyncReq <- struct{}{}:
		default:
		}
	})
}

// New returns a Controller; call Resync before serving Mounts and Run to
// follow the engine.
func New(cfg Config) (*Controller, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Grace == 0 {
		cfg.Grace = 30 * time.Second
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	ov, err := loadOverrides(cfg.OverridesFile)
	if err != nil {
		return nil, err
	}
	owners := loadOwners(cfg.OwnersDir)
	owners.failed = func(volume string, err error) {
		cfg.Log.Warn("owner cache not saved", "volume", volume, "err", err)
	}
	return &Controller{
		cfg: cfg, tasks: map[string]*task{}, overrides: ov, owners: owners, births: newBirths(),
		spares:    spares{owned: map[string]bool{}, kick: make(chan struct{}, 1)},
		resyncReq: make(chan struct{}, 1),
	}, nil
}

// mountIDRE bounds what dockerd may send as a mount ID: it becomes a
// directory name under the mount root, so no separators and no dots.
var mountIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

func (c *Controller) dir(mountID string) string { return filepath.Join(c.cfg.MountRoot, mountID) }

// Mount builds the tmpfs for one container start and returns its path. It
// fails closed: any problem is an error, and nothing stays mounted.
func (c *Controller) Mount(ctx context.Context, volume, mountID string) (string, error) {
	start := time.Now()
	t, o, err := c.mount(ctx, volume, mountID)
	if err != nil {
		c.cfg.Metrics.Error("mount", err)
		c.cfg.Audit.Deny(audit.ContainerMount, nil, audit.Event{Container: o.name(), ContainerID: o.ID, Volume: volume}, err)
		return "", err
	}
	c.cfg.Metrics.ObserveMount(time.Since(start))
	if o.ID != "" {
		// Otherwise the trail gets the mount once it knows the container.
		c.auditMount(t)
	}
	return t.dir, nil
}

// mount is Mount without its metrics and audit; it returns the owner it
// found even on failure, so a refusal names the container.
func (c *Controller) mount(ctx context.Context, volume, mountID string) (*task, owner, error) {
	start := time.Now()
	if !mountIDRE.MatchString(mountID) {
		return nil, owner{}, fmt.Errorf("invalid mount ID %q", mountID)
	}
	c.births.mounting(volume)
	var ph phases
	owner, decl, err := c.resolve(ctx, volume, &ph)
	ph.resolve = time.Since(start)
	if err != nil {
		return nil, owner, err
	}
	entries, err := declaration.Parse(decl)
	if err != nil {
		return nil, owner, err
	}
	if owner.ID != "" {
		if entries, err = c.overrides.get(owner.ID).apply(entries); err != nil {
			return nil, owner, err
		}
		if len(entries) == 0 {
			return nil, owner, fmt.Errorf("container %s has had all its secrets revoked: grant one with 'secretd container update --secret-add'", owner.name())
		}
	}
	onUpdate, err := ParseOnUpdate(owner.Labels[LabelOnUpdate])
	if err != nil {
		return nil, owner, err
	}
	t := &task{
		mountID: mountID, volume: volume,
		containerID: owner.ID, name: owner.name(), since: time.Now().UTC(), entries: entries,
		onUpdate: onUpdate,
	}
	// Held until the tmpfs is built, so a rotation that finds the claim
	// waits and then brings it up to date.
	t.mu.Lock()
	defer t.mu.Unlock()
	c.mu.Lock()
	if _, dup := c.tasks[mountID]; dup {
		c.mu.Unlock()
		return nil, owner, fmt.Errorf("mount ID %s is already mounted", mountID)
	}
	if t.dir = c.takeSpare(); t.dir != "" {
		ph.spare = true
	} else {
		t.dir = c.dir(mountID)
	}
	c.tasks[mountID] = t
	c.mu.Unlock()

	recStart := time.Now()
	err = c.saveRecord(t)
	ph.record = time.Since(recStart)
	if err == nil {
		err = c.build(t, &ph)
	}
	if err != nil {
		if ph.spare {
			// A spare Fill refused (or never saw) is still mounted, and
			// its directory is not named for this mount: nothing else
			// would ever remove it.
			if _, werr := tmpfs.Wipe(t.dir); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		c.mu.Lock()
		delete(c.tasks, mountID)
		c.mu.Unlock()
		c.removeRecord(dirBase(t.dir))
		c.cfg.Log.Warn("mount refused", "container", t.name, "volume", volume, "mount", t.dir, "err", err)
		return nil, owner, err
	}
	d := time.Since(start)
	c.mountTimes.add(d)
	c.cfg.Log.Info("secrets mounted", "container", t.name, "volume", volume, "mount", t.dir, "secrets", len(entries), "duration", d,
		"declared", ph.declared, "engine_lookup", ph.engine, "spare", ph.spare, "resolve", ph.resolve, "birth_wait", ph.birthWait, "birth_known", ph.birthKnown, "owner_cache", ph.ownerCache,
		"record", ph.record, "decrypt", ph.decrypt, "tmpfs", ph.tmpfs)
	return t, owner, nil
}

func (c *Controller) rememberOwner(volume string, o owner, ph *phases) {
	start := time.Now()
	c.owners.remember(volume, o)
	ph.ownerCache = time.Since(start)
}

// phases splits a Mount's time for its log line, so a slow Mount tells
// whether the engine, the disk, the store or the kernel held it up.
type phases struct {
	declared                        string // "volume" (its options) or "label"
	engine                          bool   // whether resolve asked the engine
	spare                           bool   // whether the tmpfs was a spare
	resolve, record, decrypt, tmpfs time.Duration
	// Parts of resolve: waiting for what a container's create taught,
	// and writing the owner cache.
	birthWait, ownerCache time.Duration
	// birthKnown: the container was known when the Mount came, so any
	// birthWait was for other containers' lookups.
	birthKnown bool
}

// build decrypts the declared versions and mounts them, into a spare or a
// new tmpfs; it records which versions went in.
func (c *Controller) build(t *task, ph *phases) error {
	start := time.Now()
	files, versions, ids, err := c.files(t.entries)
	defer wipeFiles(files)
	ph.decrypt = time.Since(start)
	if err != nil {
		return err
	}
	start = time.Now()
	if ph.spare {
		err = tmpfs.Fill(t.dir, files, tmpfs.Options{})
	} else {
		err = tmpfs.Mount(t.dir, files, tmpfs.Options{})
	}
	ph.tmpfs = time.Since(start)
	if err != nil {
		return fmt.Errorf("mount secrets: %w", err)
	}
	c.mu.Lock()
	t.versions, t.ids, t.ready = versions, ids, true
	c.mu.Unlock()
	return nil
}

// files decrypts every entry. Each secret is revealed once even when it is
// declared at several targets.
func (c *Controller) files(entries []declaration.Entry) ([]tmpfs.File, []int, []string, error) {
	type key struct {
		name    string
		version int
	}
	plain := map[key][]byte{}
	var total int64
	var files []tmpfs.File
	versions := make([]int, len(entries))
	ids := make([]string, len(entries))
	for i, e := range entries {
		k := key{e.Source, e.Version}
		data, ok := plain[k]
		if !ok {
			d, sec, err := c.cfg.Store.RevealName(e.Source, e.Version)
			if err != nil {
				for _, b := range plain {
					clear(b)
				}
				return nil, nil, nil, err
			}
			data, plain[k] = d, d
			versions[i], ids[i] = e.Version, sec.ID
			if e.Version == 0 {
				versions[i] = sec.Current
			}
		} else {
			for j := range i {
				if entries[j].Source == e.Source && entries[j].Version == e.Version {
					versions[i], ids[i] = versions[j], ids[j]
					break
				}
			}
		}
		// Every file counts, a secret at two targets twice: the cap
		// bounds what one Mount puts in memory.
		if total += int64(len(data)); c.cfg.MaxMountSize > 0 && total > c.cfg.MaxMountSize {
			for _, b := range plain {
				clear(b)
			}
			return nil, nil, nil, store.Errorf(store.ErrInvalid, "the secrets declared for this mount hold more than %d bytes (secretd daemon --max-mount-size): declare fewer or smaller secrets", c.cfg.MaxMountSize)
		}
		files = append(files, tmpfs.File{Path: e.Target, Data: data, UID: e.UID, GID: e.GID, Mode: e.Mode})
	}
	return files, versions, ids, nil
}

func wipeFiles(files []tmpfs.File) {
	for _, f := range files {
		clear(f.Data)
	}
}

// Unmount wipes the tmpfs of one container stop and forgets the task.
func (c *Controller) Unmount(volume, mountID string) error {
	if !mountIDRE.MatchString(mountID) {
		return fmt.Errorf("invalid mount ID %q", mountID)
	}
	c.births.unmounting(volume)
	c.mu.Lock()
	t := c.tasks[mountID]
	c.mu.Unlock()
	// Without a task the only mount it can be is one named for its ID.
	name, dir := "", c.dir(mountID)
	if t != nil {
		name, dir = t.name, t.dir
		c.auditMount(t) // a mount whose container was never learned
	}
	if err := c.wipe(dir, name); err != nil {
		return err
	}
	c.mu.Lock()
	if c.tasks[mountID] == t {
		delete(c.tasks, mountID)
	}
	c.mu.Unlock()
	return c.removeRecord(dirBase(dir))
}

func (c *Controller) wipe(dir, container string) error {
	res, err := tmpfs.Wipe(dir)
	if err != nil {
		c.cfg.Metrics.Error("unmount", err)
		c.cfg.Log.Error("wipe failed", "container", container, "mount", dir, "err", err)
		return fmt.Errorf("wipe secrets at %s: %w", dir, err)
	}
	if res.Lazy {
		c.cfg.Log.Warn("mount was busy: detached lazily after zeroing", "container", container, "mount", dir)
	}
	c.cfg.Log.Info("secrets wiped", "container", container, "mount", dir)
	c.cfg.Audit.Log(audit.Event{Event: audit.ContainerWipe, Container: container, Mount: dir})
	return nil
}

// owner is the container a Mount is for.
type owner struct {
	ID     string
	Names  []string
	Labels map[string]string
}

func ownerOf(s container.Summary) owner {
	return owner{ID: s.ID, Names: s.Names, Labels: s.Labels}
}

func (o owner) name() string {
	if len(o.Names) > 0 {
		return trimSlash(o.Names[0])
	}
	if len(o.ID) > 12 {
		return o.ID[:12]
	}
	return o.ID
}

func trimSlash(s string) string {
	if len(s) > 0 && s[0] == '/' {
		return s[1:]
	}
	return s
}

// resolve finds the declaration for volume: its own "secrets" option, else
// the secretd.secrets label of the container being started with it.
func (c *Controller) resolve(ctx context.Context, volume string, ph *phases) (owner, string, error) {
	decl := ""
	if c.cfg.Volumes != nil {
		decl = c.cfg.Volumes.Declaration(volume)
	}
	ph.declared = "label"
	if decl != "" {
		ph.declared = "volume"
	}
	if c.cfg.Engine == nil {
		if decl == "" {
			return owner{}, "", fmt.Errorf("volume %s declares no secrets and no engine is connected to read the container's %s label", volume, LabelSecrets)
		}
		return owner{}, decl, nil
	}
	if decl != "" && c.overrides.none() {
		// The volume carries its declaration and no live grant or revoke
		// exists that could change it: the start waits on no engine call,
		// which on a busy engine is the slowest part of a Mount by far.
		// The engine's volume mount event names the container a moment
		// later (see attribute).
		return owner{}, decl, nil
	}
	waitStart := time.Now()
	o, ok, known := c.births.take(ctx, volume)
	ph.birthWait, ph.birthKnown = time.Since(waitStart), known
	if ok {
		// The container was learned at its create (see births).
		c.rememberOwner(volume, o, ph)
		if decl == "" {
			if decl = o.Labels[LabelSecrets]; decl == "" {
				return owner{}, "", fmt.Errorf("container %s declares no secrets: add --label %s='NAME[;...]' or create the volume with -o secrets=...", o.name(), LabelSecrets)
			}
		}
		return o, decl, nil
	}
	ph.engine = true
	lctx, cancel := context.WithTimeout(ctx, ownerLookupTimeout)
	list, err := c.cfg.Engine.ContainerList(lctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", volume))})
	cancel()
	if err != nil {
		if o, ok := c.owners.get(volume); ok && (decl != "" || o.Labels[LabelSecrets] != "") {
			c.cfg.Log.Warn("the engine did not answer: using the container last seen with this volume", "volume", volume, "container", o.name(), "err", err)
			if decl == "" {
				decl = o.Labels[LabelSecrets]
			}
			return o, decl, nil
		}
		if decl != "" {
			// The volume says it all; only the owner's name is missing.
			c.cfg.Log.Warn("cannot find the container of a volume", "volume", volume, "err", err)
			return owner{}, decl, nil
		}
		return owner{}, "", fmt.Errorf("cannot read the %s label of the container using volume %s: the Docker Engine did not answer: %w", LabelSecrets, volume, err)
	}
	// The container being started is not running yet: created on a first
	// start, restarting under a restart policy, exited on `docker start`.
	var candidates []container.Summary
	for _, s := range list {
		if s.State != container.StateRunning && s.State != container.StatePaused {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 {
		candidates = list
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].Created > candidates[j].Created })
	o = owner{}
	if len(candidates) > 0 {
		o = ownerOf(candidates[0])
	}
	if o.ID != "" {
		c.rememberOwner(volume, o, ph)
	}
	if decl == "" {
		if o.ID == "" {
			return owner{}, "", fmt.Errorf("volume %s declares no secrets and no container using it was found: use -o secrets=... or the %s label", volume, LabelSecrets)
		}
		decl = o.Labels[LabelSecrets]
		if decl == "" {
			return owner{}, "", fmt.Errorf("container %s declares no secrets: add --label %s='NAME[;...]' or create the volume with -o secrets=...", o.name(), LabelSecrets)
		}
	}
	return o, decl, nil
}

// Users names the containers that use the secret: every existing container
// whose declaration names it, running or not (a stopped one needs it to
// start again), and every mount in the table.
func (c *Controller) Users(ctx context.Context, sec store.Secret) ([]string, error) {
	claims, err := c.claims(ctx, sec)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, cl := range claims {
		seen[cl.container] = true
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// Pins maps each version of the secret that a container pins to the names
// of those containers.
func (c *Controller) Pins(ctx context.Context, sec store.Secret) (map[int][]string, error) {
	claims, err := c.claims(ctx, sec)
	if err != nil {
		return nil, err
	}
	out := map[int][]string{}
	for _, cl := range claims {
		if cl.version != 0 && !slices.Contains(out[cl.version], cl.container) {
			out[cl.version] = append(out[cl.version], cl.container)
		}
	}
	for _, names := range out {
		sort.Strings(names)
	}
	return out, nil
}

// claim is one container's use of a secret; version 0 follows the current.
type claim struct {
	container string
	version   int
}

// claims lists every use of sec by the task table and, through the engine,
// by existing containers' declarations with their live overrides.
func (c *Controller) claims(ctx context.Context, sec store.Secret) ([]claim, error) {
	var out []claim
	c.mu.Lock()
	for _, t := range c.tasks {
		for _, e := range t.entries {
			if e.Source == sec.Name {
				out = append(out, claim{t.name, e.Version})
			}
		}
	}
	c.mu.Unlock()
	if c.cfg.Engine == nil {
		return out, nil
	}
	list, err := c.cfg.Engine.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, store.Errorf(store.ErrUnavailable, "cannot tell whether secret '%s' is in use: the Docker Engine did not answer: %v", sec.Name, err)
	}
	for _, s := range list {
		name := owner{ID: s.ID, Names: s.Names}.name()
		for _, decl := range c.declarations(s) {
			entries, err := declaration.Parse(decl)
			if err != nil {
				continue
			}
			if applied, err := c.overrides.get(s.ID).apply(entries); err == nil {
				entries = applied
			}
			for _, e := range entries {
				if e.Source == sec.Name {
					out = append(out, claim{name, e.Version})
				}
			}
		}
	}
	return out, nil
}

// declarations returns every declaration a container carries: its label
// (when it mounts a secretd volume) and the options of its secretd volumes.
func (c *Controller) declarations(s container.Summary) []string {
	var out []string
	mounted := false
	for _, m := range s.Mounts {
		if !c.ours(m.Driver) {
			continue
		}
		mounted = true
		if c.cfg.Volumes != nil {
			if d := c.cfg.Volumes.Declaration(m.Name); d != "" {
				out = append(out, d)
			}
		}
	}
	if d := s.Labels[LabelSecrets]; d != "" && mounted {
		out = append(out, d)
	}
	return out
}

// Tasks returns the task table, sorted by container name.
func (c *Controller) Tasks() []api.Task {
	c.mu.Lock()
	out := make([]api.Task, 0, len(c.tasks))
	for _, t := range c.tasks {
		if t.ready {
			out = append(out, t.apiTask())
		}
	}
	c.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerName < out[j].ContainerName })
	return out
}

// Stats fills the controller's part of `secretd status`.
func (c *Controller) Stats(st *api.Status) {
	c.mu.Lock()
	st.Mounts = len(c.tasks)
	st.SpareMounts = len(c.spares.free)
	c.mu.Unlock()
	p50, p99, n := c.mountTimes.quantiles()
	st.MountP50, st.MountP99, st.MountsServed = p50, p99, n
	st.EventLagP50, st.EventLagP99, st.EventsHandled = c.eventLag.quantiles()
	st.Engine = c.cfg.EngineHost
	c.engineMu.Lock()
	if c.engineErr != nil {
		st.EngineError = c.engineErr.Error()
	}
	st.Resyncs = c.resyncs
	c.engineMu.Unlock()
	st.Rotations = c.rotations.Load()
}

func (c *Controller) setEngineErr(err error) {
	c.engineMu.Lock()
	c.engineErr = err
	c.engineMu.Unlock()
}

var errNoEngine = errors.New("no engine configured")

// ours reports whether a driver name the engine reports is this driver: a
// managed plugin shows as NAME:TAG.
func (c *Controller) ours(driver string) bool {
	return driver == c.cfg.DriverName || strings.HasPrefix(driver, c.cfg.DriverName+":")
}

// MountPoint returns the newest ready mount of a volume, "" when none.
func (c *Controller) MountPoint(volume string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best *task
	for _, t := range c.tasks {
		if t.volume == volume && t.ready && (best == nil || t.since.After(best.since)) {
			best = t
		}
	}
	if best == nil {
		return ""
	}
	return best.dir
}
