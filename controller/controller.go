package controller

import (
	"errors"
	"log/slog"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/store"
)

// Config is what a Controller works with.
type Config struct {
	Store *store.Store
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

	vols   *registry
	binder binder
	// imageCache holds the secretd labels of images by ID (see imageLabels).
	imageMu    sync.Mutex
	imageCache map[string]map[string]string
	// learning counts the lookups of created containers under way.
	learning sync.WaitGroup
	legacy   *legacyGrants
	// hostnames are the hostnames of containers that declare secrets,
	// learned at their create event, for secret-driver plugins.
	hostnames hostnames

	tasks  *taskTable
	spares *spares

	mountTimes latencies
	eventLag   latencies

	engineMu  sync.Mutex
	engineErr error
	resyncs   uint64

	rotations atomic.Uint64

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
	vols, err := loadRegistry(cfg.VolumesDir, cfg.LegacyVolumesFile)
	if err != nil {
		return nil, err
	}
	legacy, err := loadLegacyGrants(cfg.LegacyGrantsFile)
	if err != nil {
		return nil, err
	}
	return &Controller{
		cfg: cfg, vols: vols, legacy: legacy, tasks: newTaskTable(),
		binder:    binder{running: map[string]chan struct{}{}},
		spares:    newSpares(cfg.MountRoot),
		resyncReq: make(chan struct{}, 1),
	}, nil
}

// mountIDRE bounds what dockerd may send as a mount ID: it becomes a
// directory name under the mount root, so no separators and no dots.
var mountIDRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,128}$`)

func (c *Controller) dir(mountID string) string { return filepath.Join(c.cfg.MountRoot, mountID) }

// Tasks returns the task table, sorted by container name.
func (c *Controller) Tasks() []api.Task {
	out := []api.Task{}
	for _, v := range c.tasks.views() {
		if v.live() {
			out = append(out, v.apiTask())
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

// ourMount reports whether a container's mount is a volume of this
// driver: by the driver's name, or by the volume's name, which the engine
// keeps unique across drivers. A managed plugin is known to the engine by
// the name it was installed under, which may not be the one it was given.
func (c *Controller) ourMount(m container.MountPoint) bool {
	return m.Type == "volume" && (c.ours(m.Driver) || c.vols.has(m.Name))
}

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
