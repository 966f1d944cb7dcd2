package controller

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/store"
)

// Config is what a Controller works with.
type Config struct {
	Store *store.Store
	// Node is the host as templates see it (.Node); nil refuses a
	// template that reads it.
	Node func(ctx context.Context) (Node, error)
	// Sources fetches driver secrets' values; nil refuses them at Mount.
	Sources Sources
	// Engine may be nil only in tests whose volumes carry their
	// declaration.
	Engine     Engine
	EngineHost string
	// VolumesDir keeps the volume registry across restarts, a file per
	// volume; empty keeps it in memory only.
	VolumesDir string
	// LegacyVolumesFile is where earlier versions kept every volume in one
	// file; its volumes move into VolumesDir at start.
	LegacyVolumesFile string
	// LegacyGrantsFile is where earlier versions kept live grants and
	// revokes by container; they move onto the containers' volumes at the
	// first resync that finds them.
	LegacyGrantsFile string
	MountRoot        string
	DriverName       string
	Log              *slog.Logger
	// Grace protects mounts younger than this from resync: dockerd calls
	// Mount before the container shows as running.
	Grace time.Duration
	// Actions carries out on-update signals and restarts; nil disables them.
	Actions Actions
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

// Controller keeps the volume registry and the task table. It is safe for
// concurrent use.
type Controller struct {
	cfg Config

	vols    *registry
	binding *binding
	legacy  *legacyGrants

	root     *mountRoot
	contents *contents
	tasks    *taskTable
	spares   *spares
	staging  *staging

	mountTimes latencies
	eventLag   latencies

	engine engineStatus

	rotations atomic.Uint64

	// resyncReq asks Run for a resync; buffered so requests coalesce.
	resyncReq resyncRequests
}

// resyncRequests carry requests for a resync to Run; buffered so that
// requests coalesce.
type resyncRequests chan struct{}

// ask asks for a resync, unless one is asked already.
func (r resyncRequests) ask() {
	select {
	case r <- struct{}{}:
	default:
	}
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
	vols, err := loadRegistry(cfg.VolumesDir, cfg.LegacyVolumesFile)
	if err != nil {
		return nil, err
	}
	legacy, err := loadLegacyGrants(cfg.LegacyGrantsFile)
	if err != nil {
		return nil, err
	}
	tasks, spares := newTaskTable(), newSpares(cfg.MountRoot)
	staging := newStaging(spares, cfg.Log)
	c := &Controller{
		cfg: cfg, vols: vols, legacy: legacy, tasks: tasks,
		binding:   newBinding(cfg, vols),
		contents:  &contents{store: cfg.Store, sources: cfg.Sources, maxSize: cfg.MaxMountSize},
		root:      &mountRoot{path: cfg.MountRoot, log: cfg.Log, metrics: cfg.Metrics, audit: cfg.Audit, tasks: tasks, spares: spares, staging: staging},
		spares:    spares,
		staging:   staging,
		resyncReq: make(resyncRequests, 1),
	}
	c.binding.boundAtCreate = c.stage
	return c, nil
}

// mountIDRE bounds what dockerd may send as a mount ID: it becomes a
// directory name under the mount root, so no separators and no dots.
var mountIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

// Tasks returns the task table, sorted by container name: a mount that
// several containers share (Podman's) once for each of them.
func (c *Controller) Tasks() []api.Task {
	out := []api.Task{}
	for _, v := range c.tasks.views() {
		if !v.live() {
			continue
		}
		vol, _ := c.vols.get(v.volume)
		for _, w := range v.containers() {
			out = append(out, w.apiTask(vol.oneFile()))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ContainerName < out[j].ContainerName })
	return out
}

// Stats fills the controller's part of `secretd status`.
func (c *Controller) Stats(st *api.Status) {
	st.Mounts = c.tasks.len()
	st.SpareMounts = c.spares.ready()
	p50, p99, n := c.mountTimes.quantiles()
	st.MountP50, st.MountP99, st.MountsServed = p50, p99, n
	st.EventLagP50, st.EventLagP99, st.EventsHandled = c.eventLag.quantiles()
	st.Engine = c.cfg.EngineHost
	st.EngineError, st.Resyncs = c.engine.status()
	st.Rotations = c.rotations.Load()
}

// engineStatus is what the controller knows of its link to the engine.
type engineStatus struct {
	// kind is the engineKind of the engine followed, learned at a resync.
	kind atomic.Int32

	mu sync.Mutex
	// err is why the last attempt to follow the engine failed; nil while
	// it works.
	err     error
	resyncs uint64
}

func (e *engineStatus) set(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.err = err
}

func (e *engineStatus) up() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err == nil
}

// resynced counts a resync done.
func (e *engineStatus) resynced() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.resyncs++
}

// status returns the last error's message ("" while up) and the resyncs
// done.
func (e *engineStatus) status() (string, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		return e.err.Error(), e.resyncs
	}
	return "", e.resyncs
}

var errNoEngine = errors.New("no engine configured")

// MountPoint returns the newest mounted directory of a volume, "" when none.
func (c *Controller) MountPoint(volume string) string {
	var best taskView
	for _, v := range c.tasks.views() {
		if v.volume == volume && v.live() && (best.dir == "" || v.since.After(best.since)) {
			best = v
		}
	}
	return best.dir
}

func trimSlash(s string) string { return strings.TrimPrefix(s, "/") }
