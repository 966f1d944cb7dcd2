// Package daemon assembles secretd: the store, the API, the volume driver
// and the controller, with their lifetimes tied to one context.
package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/controller"
	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/driver"
	"github.com/secretd/secretd/internal/metrics"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/source/plugin"
	"github.com/secretd/secretd/internal/source/shell"
	"github.com/secretd/secretd/internal/sourced"
	"github.com/secretd/secretd/internal/store"
)

// Config is everything `secretd daemon` takes from its flags.
type Config struct {
	DataRoot string
	Hosts    []string
	Group    string
	KeyFile  string
	Autolock bool
	TLS      TLS
	// DriverName names the volume driver (and its plugin socket).
	DriverName string
	// PluginDir is where dockerd discovers plugin sockets.
	PluginDir string
	// MountRoot holds one tmpfs per container mount.
	MountRoot string
	// DockerHost is the engine to follow; empty means DOCKER_HOST or the default socket.
	DockerHost string
	// MountGrace protects a fresh mount from resync while its container starts.
	MountGrace time.Duration
	// SpareMounts is how many empty mounts are kept ready for Mounts to fill.
	SpareMounts int
	// MaxMountSize caps the plaintext one container mount holds; zero
	// means DefaultMaxMountSize.
	MaxMountSize int64
	// Store says which backend holds the secrets: a bolt file or etcd.
	Store   StoreConfig
	Version string
	Log     *slog.Logger
	// MetricsAddr is where Prometheus scrapes /metrics (host:port); empty
	// serves no metrics.
	MetricsAddr string
	// AuditLog is --audit-log: a file, "-" for stdout, "off", or empty for
	// DATA-ROOT/audit.log.
	AuditLog string
	// SecretDriverDir, when set, is the one directory where secret-driver
	// plugins are found; empty means Docker's directories.
	SecretDriverDir string
	// ShellConfig is the shell driver's host-wide configuration file.
	ShellConfig string
	// TLSSecretCommands lets TLS clients name a shell driver secret's own
	// commands, as root may on the unix socket.
	TLSSecretCommands bool
	// TrustCommandsFrom names the other hosts of a shared store whose
	// root's per-secret commands this host runs; "*" names them all.
	TrustCommandsFrom []string
	// Out receives the audit trail with --audit-log -; never a key.
	Out io.Writer
}

// DefaultMaxMountSize is --max-mount-size's default: far above what a
// container's secrets need, far below 256 secrets of 500 KiB each.
const DefaultMaxMountSize = 4 << 20

// Run serves until ctx ends. It fails before serving anything if the store
// cannot be opened as it is: a daemon never repairs or replaces a store.
//
// It runs in three steps: open the store, build the controller (and what
// feeds it), serve (the controller, the plugin socket, the API and the
// metrics, under one errgroup that stops them all when one fails).
func Run(ctx context.Context, cfg Config) error {
	if os.Geteuid() != 0 {
		return errors.New("secretd daemon must run as root: it mounts tmpfs filesystems and serves Docker's plugin socket (run it with sudo, or with --rootless as the user of a rootless Docker engine)")
	}
	cfg, err := prepare(cfg)
	if err != nil {
		return err
	}
	d := &daemon{cfg: cfg, log: cfg.Log}
	d.trail, err = audit.Open(cfg.AuditLog, cfg.DataRoot, cfg.Out, func(err error) {
		cfg.Log.Error("audit trail write failed", "err", err)
	})
	if err != nil {
		return err
	}
	defer d.trail.Close()
	// 1. Open the store.
	if err := d.openStore(); err != nil {
		return err
	}
	defer d.st.Close()
	// 2. Build the controller.
	if err := d.build(ctx); err != nil {
		return err
	}
	defer d.engine.Close()
	// 3. Serve.
	return d.serve(ctx)
}

// daemon is what Run builds, step by step.
type daemon struct {
	cfg Config
	log *slog.Logger

	trail     *audit.Logger
	backend   *Backend
	st        *store.Store
	rollbacks prometheus.Counter

	engine     *Engine
	engineHost string
	metrics    *metrics.Metrics
	sources    *sourced.Service
	ctrl       *controller.Controller
	shared     *cluster
	rotated    rotations
}

// prepare fills cfg's defaults and makes the data root, private.
func prepare(cfg Config) (Config, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = filepath.Join(cfg.DataRoot, "key")
	}
	if err := os.MkdirAll(cfg.DataRoot, 0o700); err != nil {
		return cfg, fmt.Errorf("data root: %w", err)
	}
	return cfg, privateDir("--data-root", cfg.DataRoot, cfg.Log)
}

// openStore opens the backend and the store in it, as they are.
func (d *daemon) openStore() error {
	cfg := d.cfg
	backend, err := OpenBackend(cfg.Store, cfg.DataRoot)
	if err != nil {
		return err
	}
	// Created here so a rollback refused while the store opens is counted.
	d.rollbacks = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "rollbacks_refused_total",
		Help: "Reads refused because a secret's record was older than one this host had seen (a rolled-back store).",
	})
	st, unlockKey, err := store.Open(backend.Backend, store.Config{
		KeyFile: cfg.KeyFile, Autolock: cfg.Autolock,
		HighWaterFile: filepath.Join(cfg.DataRoot, "versions.json"),
		KeyStateFile:  filepath.Join(cfg.DataRoot, "keyring.json"),
		OnRollback: func(ev store.RollbackEvent) {
			d.rollbacks.Inc()
			cfg.Log.Error("store rollback refused: a secret's record is older than one this host has seen",
				"secret", ev.Name, "id", ev.ID, "version", ev.Current, "seen", ev.Seen)
		},
	})
	if err != nil {
		backend.Close()
		return err
	}
	d.backend, d.st = backend, st
	if unlockKey != "" {
		// The key never goes to stdout or the log, which end up in
		// journald or in Docker's JSON log on disk: the operator fetches it
		// over the API socket, as `docker swarm init --autolock` shows it
		// only to the CLI's user.
		cfg.Log.Warn("created a new store with --autolock: run 'secretd unlock-key' now and keep the unlock key in a password manager; after a restart only that key opens the store")
	}
	if st.Locked() {
		cfg.Log.Warn("store is locked: run 'secretd unlock'")
	}
	return nil
}

// build connects the engine, checks the mount root, and makes the
// controller with its metrics, secret sources, rotation hook and cluster;
// it resyncs once before anything is served.
func (d *daemon) build(ctx context.Context) error {
	cfg := d.cfg
	var err error
	if d.engine, d.engineHost, err = newEngine(ctx, cfg.DockerHost, engineVersionTimeout, cfg.Log); err != nil {
		return err
	}
	if err := prepareMountRoot(cfg); err != nil {
		d.engine.Close()
		return err
	}
	if err := d.newController(); err != nil {
		d.engine.Close()
		return err
	}
	// A new version reaches every running container before `secret update`
	// returns, and the update fails when it did not.
	d.st.OnUpdate(func(sec store.Secret) {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		rot, err := d.ctrl.Rotate(rctx, sec)
		d.rotated.record(sec, rot, err)
		kind := sec.Kind.String()
		if err != nil {
			cfg.Log.Error("rotation incomplete", kind, sec.Name, "version", sec.Current, "containers", rot.Updated, "err", err)
			return
		}
		cfg.Log.Info(kind+" rotated", kind, sec.Name, "version", sec.Current, "containers", rot.Updated, "later", len(rot.Containers))
	})
	if d.shared, err = newCluster(d.backend, cfg.Store.HostID, cfg.Log); err != nil {
		d.engine.Close()
		return err
	}
	// Wipe what containers that stopped while secretd was down left behind,
	// before dockerd can send the first Mount.
	// Bounded: at boot dockerd answers nothing until it has restarted its
	// containers, which needs this daemon's plugin socket up first.
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	if err := d.ctrl.Resync(rctx); err != nil {
		cfg.Log.Warn("initial resync incomplete: will resync when the engine answers", "err", err)
	}
	return nil
}

// prepareMountRoot makes the mount root, private, and checks it holds
// nothing secretd would take for its own.
func prepareMountRoot(cfg Config) error {
	if err := os.MkdirAll(cfg.MountRoot, 0o700); err != nil {
		return fmt.Errorf("mount root: %w", err)
	}
	if err := privateDir("--mount-root", cfg.MountRoot, cfg.Log); err != nil {
		return err
	}
	if err := checkMountRoot(cfg.MountRoot); err != nil {
		return err
	}
	logNoswap(cfg.Log, cfg.MountRoot)
	return nil
}

// newController makes the metrics, the secret sources and the controller.
func (d *daemon) newController() error {
	cfg := d.cfg
	// The gauges read the controller at scrape time; nothing scrapes before
	// it exists, because the metrics listener opens after it.
	d.metrics = metrics.New(metrics.State{
		Mounts: func() int { return d.ctrl.ActiveMounts() }, EngineUp: func() bool { return d.ctrl.EngineUp() },
		Locked: d.st.Locked, Version: cfg.Version,
	})
	d.metrics.Registry().MustRegister(d.rollbacks)
	drivers, err := newDrivers(cfg, d.backend.Etcd != nil)
	if err != nil {
		return err
	}
	d.sources = &sourced.Service{Store: d.st, Drivers: drivers, Log: cfg.Log, Metrics: d.metrics, Audit: d.trail,
		Host: thisHost(cfg.Store.HostID), TLSCommands: cfg.TLSSecretCommands}
	node := &nodeInfo{engine: d.engine}
	d.ctrl, err = controller.New(controller.Config{
		Store: d.st, Sources: d.sources, Engine: d.engine, EngineHost: d.engineHost, Actions: d.engine, Node: node.get,
		MountRoot: cfg.MountRoot, DriverName: cfg.DriverName, Log: cfg.Log,
		VolumesDir:        filepath.Join(cfg.DataRoot, "volumes"),
		LegacyVolumesFile: filepath.Join(cfg.DataRoot, "volumes.json"),
		LegacyGrantsFile:  filepath.Join(cfg.DataRoot, "containers.json"),
		Grace:             cfg.MountGrace,
		Spares:            cfg.SpareMounts,
		MaxMountSize:      cmp.Or(cfg.MaxMountSize, DefaultMaxMountSize),
		Metrics:           d.metrics, Audit: d.trail,
	})
	return err
}

// listeners are the sockets Run serves.
type listeners struct {
	api     []net.Listener
	plugin  net.Listener
	metrics net.Listener // nil without --metrics-addr
}

// listen opens every socket, or none.
func (d *daemon) listen() (*listeners, error) {
	cfg := d.cfg
	api, err := listen(cfg.Hosts, cfg.Group, cfg.TLS)
	if err != nil {
		return nil, err
	}
	l := &listeners{api: api}
	if l.plugin, err = driver.Listen(cfg.PluginDir, cfg.DriverName); err == nil {
		l.metrics, err = listenMetrics(cfg.MetricsAddr, cfg.Log)
	}
	if err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *listeners) close() {
	for _, x := range append(slices.Clone(l.api), l.plugin, l.metrics) {
		if x != nil {
			x.Close()
		}
	}
}

// server is the API server over the store, the sources and the controller
// (with the other hosts' claims when the store is shared).
func (d *daemon) server() *server.Server {
	apiCtrl := inUse(d.ctrl, d.shared)
	d.sources.Pins = func(ctx context.Context, sec store.Secret) ([]int, error) {
		pins, err := apiCtrl.Pins(ctx, sec)
		out := make([]int, 0, len(pins))
		for v := range pins {
			out = append(out, v)
		}
		return out, err
	}
	return server.New(server.Config{
		Store:      d.st,
		Sources:    d.sources,
		KeyFile:    d.cfg.KeyFile,
		Tasks:      apiCtrl,
		Containers: apiCtrl,
		Version:    d.cfg.Version,
		Log:        d.cfg.Log,
		Audit:      d.trail,
		Metrics:    d.metrics,
		Rotations:  &d.rotated,
		Renders:    d.ctrl,
		Status: func(s *api.Status) {
			s.Store = d.backend.URL
			s.VolumeDriver = d.cfg.DriverName
			d.ctrl.Stats(s)
			noswapStatus(s, d.cfg.MountRoot)
		},
	})
}

// serve runs the controller, the secret sources, the spares, the shared
// store's watch and every listener until ctx ends or one of them fails.
func (d *daemon) serve(ctx context.Context) error {
	cfg := d.cfg
	l, err := d.listen()
	if err != nil {
		return err
	}
	srv := d.server()
	drv := driver.New(d.ctrl)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { d.ctrl.Run(ctx); return nil })
	g.Go(func() error { d.sources.Run(ctx); return nil })
	g.Go(func() error { d.ctrl.KeepSpares(ctx); return nil })
	g.Go(func() error { runShared(ctx, d.st, d.shared, cfg.Log); return nil })
	g.Go(func() error { <-ctx.Done(); l.plugin.Close(); return nil })
	g.Go(func() error {
		if err := drv.Serve(l.plugin); err != nil {
			return fmt.Errorf("serve plugin socket: %w", err)
		}
		return nil
	})
	cfg.Log.Info("volume driver listening", "driver", cfg.DriverName, "socket", l.plugin.Addr().String())
	if l.metrics != nil {
		g.Go(func() error {
			if err := d.metrics.Serve(ctx, l.metrics); err != nil {
				return fmt.Errorf("serve metrics: %w", err)
			}
			return nil
		})
		cfg.Log.Info("metrics listening", "addr", "http://"+l.metrics.Addr().String()+"/metrics")
	}
	for _, a := range l.api {
		g.Go(func() error {
			if err := srv.Serve(ctx, a); err != nil {
				return fmt.Errorf("serve %s: %w", a.Addr(), err)
			}
			return nil
		})
		cfg.Log.Info("api listening", "addr", a.Addr().String())
	}
	cfg.Log.Info("secretd started", "version", cfg.Version, "data_root", cfg.DataRoot, "locked", d.st.Locked(), "engine", d.engineHost)
	err = g.Wait()
	// The plugin socket goes away with the daemon, so dockerd reports
	// "plugin not found" (fail closed) instead of hanging on a dead socket.
	os.Remove(filepath.Join(cfg.PluginDir, cfg.DriverName+".sock"))
	cfg.Log.Info("secretd stopped")
	return err
}

// newDrivers is the built-in shell driver, with the host's configuration
// and whose per-secret commands it runs, and the secret-driver plugins
// found where dockerd finds them (or in --secret-driver-dir).
func newDrivers(cfg Config, shared bool) (*source.Drivers, error) {
	shellCfg, err := shell.LoadConfig(cmp.Or(cfg.ShellConfig, shell.DefaultConfigPath))
	if err != nil {
		return nil, fmt.Errorf("--shell-driver-config: %w", err)
	}
	if len(cfg.TrustCommandsFrom) > 0 && !shared {
		return nil, errors.New("--trust-commands-from applies only to a store several hosts share (--store etcd://...): on a store of its own a host runs the commands its root named")
	}
	sh := shell.New(shellCfg)
	sh.Trust = shell.Trust{Host: thisHost(cfg.Store.HostID), Shared: shared, Hosts: cfg.TrustCommandsFrom}
	sh.Log = cfg.Log
	reg := &plugin.Registry{}
	if cfg.SecretDriverDir != "" {
		reg.SocketsDir, reg.SpecsDirs = cfg.SecretDriverDir, []string{cfg.SecretDriverDir}
	}
	return &source.Drivers{Builtin: map[string]source.Provider{shell.Name: sh}, Plugins: reg}, nil
}

// thisHost names this host among those sharing a store: --host-id, or the
// hostname.
func thisHost(flag string) string {
	if flag != "" {
		return flag
	}
	if h, err := os.Hostname(); err == nil {
		return h
	}
	return "localhost"
}
