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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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
func Run(ctx context.Context, cfg Config) error {
	if os.Geteuid() != 0 {
		return errors.New("secretd daemon must run as root: it mounts tmpfs filesystems and serves Docker's plugin socket (run it with sudo, or with --rootless as the user of a rootless Docker engine)")
	}
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
		return fmt.Errorf("data root: %w", err)
	}
	if err := privateDir("--data-root", cfg.DataRoot, cfg.Log); err != nil {
		return err
	}
	trail, err := audit.Open(cfg.AuditLog, cfg.DataRoot, cfg.Out, func(err error) {
		cfg.Log.Error("audit trail write failed", "err", err)
	})
	if err != nil {
		return err
	}
	defer trail.Close()
	backend, err := OpenBackend(cfg.Store, cfg.DataRoot)
	if err != nil {
		return err
	}
	// Created here so a rollback refused while the store opens is counted.
	rollbacks := prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metrics.Namespace, Name: "rollbacks_refused_total",
		Help: "Reads refused because a secret's record was older than one this host had seen (a rolled-back store).",
	})
	st, unlockKey, err := store.Open(backend.Backend, store.Config{
		KeyFile: cfg.KeyFile, Autolock: cfg.Autolock,
		HighWaterFile: filepath.Join(cfg.DataRoot, "versions.json"),
		KeyStateFile:  filepath.Join(cfg.DataRoot, "keyring.json"),
		OnRollback: func(ev store.RollbackEvent) {
			rollbacks.Inc()
			cfg.Log.Error("store rollback refused: a secret's record is older than one this host has seen",
				"secret", ev.Name, "id", ev.ID, "version", ev.Current, "seen", ev.Seen)
		},
	})
	if err != nil {
		backend.Close()
		return err
	}
	defer st.Close()
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

	engine, engineHost, err := newEngine(ctx, cfg.DockerHost, engineVersionTimeout, cfg.Log)
	if err != nil {
		return err
	}
	defer engine.Close()
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
	// The gauges read the controller at scrape time; nothing scrapes before
	// it exists, because the metrics listener opens after it.
	var ctrl *controller.Controller
	m := metrics.New(metrics.State{
		Mounts: func() int { return ctrl.ActiveMounts() }, EngineUp: func() bool { return ctrl.EngineUp() },
		Locked: st.Locked, Version: cfg.Version,
	})
	m.Registry().MustRegister(rollbacks)
	drivers, err := newDrivers(cfg, backend.Etcd != nil)
	if err != nil {
		return err
	}
	sources := &sourced.Service{Store: st, Drivers: drivers, Log: cfg.Log, Metrics: m, Audit: trail,
		Host: thisHost(cfg.Store.HostID), TLSCommands: cfg.TLSSecretCommands}
	ctrl, err = controller.New(controller.Config{
		Store: st, Sources: sources, Engine: engine, EngineHost: engineHost, Actions: engine,
		MountRoot: cfg.MountRoot, DriverName: cfg.DriverName, Log: cfg.Log,
		VolumesDir:        filepath.Join(cfg.DataRoot, "volumes"),
		LegacyVolumesFile: filepath.Join(cfg.DataRoot, "volumes.json"),
		LegacyGrantsFile:  filepath.Join(cfg.DataRoot, "containers.json"),
		Grace:             cfg.MountGrace,
		Spares:            cfg.SpareMounts,
		MaxMountSize:      cmp.Or(cfg.MaxMountSize, DefaultMaxMountSize),
		Metrics:           m, Audit: trail,
	})
	if err != nil {
		return err
	}
	// A new version reaches every running container before `secret update`
	// returns, and the update fails when it did not.
	var rotated rotations
	st.OnUpdate(func(sec store.Secret) {
		rctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		n, err := ctrl.Rotate(rctx, sec)
		rotated.record(sec, err)
		if err != nil {
			cfg.Log.Error("rotation incomplete", "secret", sec.Name, "version", sec.Current, "containers", n, "err", err)
			return
		}
		cfg.Log.Info("secret rotated", "secret", sec.Name, "version", sec.Current, "containers", n)
	})
	shared, err := newCluster(backend, cfg.Store.HostID, cfg.Log)
	if err != nil {
		return err
	}
	drv := driver.New(ctrl)
	// Wipe what containers that stopped while secretd was down left behind,
	// before dockerd can send the first Mount.
	// Bounded: at boot dockerd answers nothing until it has restarted its
	// containers, which needs this daemon's plugin socket up first.
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	if err := ctrl.Resync(rctx); err != nil {
		cfg.Log.Warn("initial resync incomplete: will resync when the engine answers", "err", err)
	}
	rcancel()

	listeners, err := listen(cfg.Hosts, cfg.Group, cfg.TLS)
	if err != nil {
		return err
	}
	pluginL, err := driver.Listen(cfg.PluginDir, cfg.DriverName)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		return err
	}
	metricsL, err := listenMetrics(cfg.MetricsAddr, cfg.Log)
	if err != nil {
		for _, l := range listeners {
			l.Close()
		}
		pluginL.Close()
		return err
	}
	apiCtrl := inUse(ctrl, shared)
	sources.Pins = func(ctx context.Context, sec store.Secret) ([]int, error) {
		pins, err := apiCtrl.Pins(ctx, sec)
		out := make([]int, 0, len(pins))
		for v := range pins {
			out = append(out, v)
		}
		return out, err
	}
	srv := server.New(server.Config{
		Store:      st,
		Sources:    sources,
		KeyFile:    cfg.KeyFile,
		Tasks:      inUse(ctrl, shared),
		Containers: inUse(ctrl, shared),
		Version:    cfg.Version,
		Log:        cfg.Log,
		Audit:      trail,
		Metrics:    m,
		Rotations:  &rotated,
		Status: func(s *api.Status) {
			s.Store = backend.URL
			ctrl.Stats(s)
			noswapStatus(s, cfg.MountRoot)
		},
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(listeners)+2)
	wg.Add(5)
	go func() {
		defer wg.Done()
		ctrl.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		sources.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		ctrl.KeepSpares(ctx)
	}()
	go func() {
		defer wg.Done()
		runShared(ctx, st, shared, cfg.Log)
	}()
	go func() {
		defer wg.Done()
		go func() { <-ctx.Done(); pluginL.Close() }()
		if err := drv.Serve(pluginL); err != nil {
			errc <- fmt.Errorf("serve plugin socket: %w", err)
			cancel()
		}
	}()
	cfg.Log.Info("volume driver listening", "driver", cfg.DriverName, "socket", pluginL.Addr().String())
	if metricsL != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.Serve(ctx, metricsL); err != nil {
				errc <- fmt.Errorf("serve metrics: %w", err)
				cancel()
			}
		}()
		cfg.Log.Info("metrics listening", "addr", "http://"+metricsL.Addr().String()+"/metrics")
	}
	for _, l := range listeners {
		wg.Add(1)
		go func(l net.Listener) {
			defer wg.Done()
			if err := srv.Serve(ctx, l); err != nil {
				errc <- fmt.Errorf("serve %s: %w", l.Addr(), err)
				cancel()
			}
		}(l)
		cfg.Log.Info("api listening", "addr", l.Addr().String())
	}
	cfg.Log.Info("secretd started", "version", cfg.Version, "data_root", cfg.DataRoot, "locked", st.Locked(), "engine", engineHost)
	<-ctx.Done()
	wg.Wait()
	close(errc)
	// The plugin socket goes away with the daemon, so dockerd reports
	// "plugin not found" (fail closed) instead of hanging on a dead socket.
	os.Remove(filepath.Join(cfg.PluginDir, cfg.DriverName+".sock"))
	cfg.Log.Info("secretd stopped")
	return <-errc
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
