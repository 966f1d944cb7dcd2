// Package daemoncmd holds the commands that run the daemon's own code:
// `secretd daemon` and `secretd store`. They link the daemon with its
// stores, metrics and etcd client, so they live in the secretd-daemon
// binary, and the secretd CLI execs that for them (package command's
// stubs).
package daemoncmd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/internal/daemon"
)

type daemonOptions struct {
	cfg       daemon.Config
	logLevel  string
	logFormat string
	rootless  rootlessOptions
}

// NewDaemonCommand returns `secretd daemon`.
func NewDaemonCommand(c *cli.Cli) *cobra.Command {
	var o daemonOptions
	cmd := &cobra.Command{
		Use:   "daemon [OPTIONS]",
		Short: "Run the secretd daemon (as root, or --rootless for a user's rootless engine)",
		Example: `  sudo secretd daemon
  secretd daemon --rootless
  sudo secretd daemon --autolock --group docker
  sudo secretd daemon --metrics-addr 127.0.0.1:9323 --audit-log /var/log/secretd/audit.log
  sudo secretd daemon -H unix:///run/secretd/secretd.sock -H tcp://0.0.0.0:2378 \
      --tlscacert ca.pem --tlscert server.pem --tlskey server-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log, err := newLogger(c, o.logLevel, o.logFormat)
			if err != nil {
				return err
			}
			o.cfg.Hosts = c.Hosts
			o.cfg.TLS = daemon.TLS{CACert: c.TLSCACert, Cert: c.TLSCert, Key: c.TLSKey}
			o.cfg.Version = cli.Version
			o.cfg.Log = log
			o.cfg.Out = c.Out
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.rootless.on || o.rootless.enginePID != 0 {
				return runRootless(ctx, cmd, c, &o)
			}
			if len(o.cfg.Hosts) == 0 {
				o.cfg.Hosts = []string{client.DefaultHost}
			}
			defer profileCPU(log)()
			return daemon.Run(ctx, o.cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.cfg.DataRoot, "data-root", "/var/lib/secretd", "where the encrypted store and the key file live")
	f.StringVar(&o.cfg.Group, "group", "", "group that may use the API socket (socket mode 0660; default root only)")
	f.StringVar(&o.cfg.KeyFile, "key-file", "", "file holding the root key, created on first start (default DATA-ROOT/key)")
	f.BoolVar(&o.cfg.Autolock, "autolock", false, "keep no key on the host: start locked until 'secretd unlock'")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	addOpsFlags(f, &o.cfg)
	addDeliveryFlags(f, &o.cfg)
	addStoreFlags(f, &o.cfg.Store, true)
	addRootlessFlags(f, &o.rootless)
	return cmd
}

func newLogger(c *cli.Cli, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(c.Err, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(c.Err, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: use text or json", format)
	}
}

// Commands returns the commands of this package, for the trees of
// secretd-daemon and of the docs.
func Commands(c *cli.Cli) []*cobra.Command {
	return []*cobra.Command{NewDaemonCommand(c), NewStoreCommand(c)}
}
