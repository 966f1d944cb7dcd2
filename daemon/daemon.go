// Package daemon assembles secretd: the store, the API, the volume driver
// and the controller, with their lifetimes tied to one context.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/server"
	"github.com/secretd/secretd/store"
	"github.com/secretd/secretd/store/bolt"
)

// Config is everything `secretd daemon` takes from its flags.
type Config struct {
	DataRoot string
	Hosts    []string
	Group    string
	KeyFile  string
	Autolock bool
	TLS      TLS
	Version  string
	Log      *slog.Logger
	// Out receives the one-time unlock key of a new autolocked store.
	Out io.Writer
}

// Run serves until ctx ends. It fails before serving anything if the store
// cannot be opened as it is: a daemon never repairs or replaces a store.
func Run(ctx context.Context, cfg Config) error {
	if os.Geteuid() != 0 {
		return errors.New("secretd daemon must run as root: it mounts tmpfs filesystems and serves Docker's plugin socket (run it with sudo)")
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
	backend, err := bolt.Open(filepath.Join(cfg.DataRoot, "secrets.db"))
	if err != nil {
		return err
	}
	if err := backend.Check(); err != nil {
		backend.Close()
		return err
	}
	st, unlockKey, err := store.Open(backend, store.Config{KeyFile: cfg.KeyFile, Autolock: cfg.Autolock})
	if err != nil {
		backend.Close()
		return err
	}
	defer st.Close()
	if unlockKey != "" {
		fmt.Fprintf(cfg.Out, "secretd created a new store with --autolock. After every restart it stays locked until\n"+
			"'secretd unlock' is given this unlock key. It is shown only now: keep it in a password manager.\n\n    %s\n\n", unlockKey)
	}
	if st.Locked() {
		cfg.Log.Warn("store is locked: run 'secretd unlock'")
	}

	listeners, err := listen(cfg.Hosts, cfg.Group, cfg.TLS)
	if err != nil {
		return err
	}
	srv := server.New(server.Config{
		Store:   st,
		KeyFile: cfg.KeyFile,
		Version: cfg.Version,
		Log:     cfg.Log,
		Status: func(s *api.Status) {
			s.Store = "bolt://" + backend.Path()
		},
	})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(listeners))
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
	cfg.Log.Info("secretd started", "version", cfg.Version, "data_root", cfg.DataRoot, "locked", st.Locked())
	<-ctx.Done()
	wg.Wait()
	close(errc)
	cfg.Log.Info("secretd stopped")
	return <-errc
}
