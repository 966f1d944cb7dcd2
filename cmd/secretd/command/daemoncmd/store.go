package daemoncmd

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/internal/daemon"
	"github.com/secretd/secretd/internal/store"
)

// NewStoreCommand returns `secretd store` with its `migrate` subcommand.
func NewStoreCommand(c *cli.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "store",
		Short:   "Manage where the daemon keeps its secrets",
		Example: `  sudo secretd store migrate --from bolt:///var/lib/secretd/secrets.db --to etcd://10.0.0.1:2379`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newMigrateCommand(c))
	return cmd
}

type migrateOptions struct {
	from, to string
	// etcd holds the TLS and prefix flags, for whichever side is etcd.
	etcd daemon.StoreConfig
}

// side is the StoreConfig of one end of a migration.
func (o migrateOptions) side(url string) daemon.StoreConfig {
	cfg := daemon.StoreConfig{URL: url}
	if strings.HasPrefix(url, "etcd://") {
		cfg.EtcdCACert, cfg.EtcdCert, cfg.EtcdKey, cfg.EtcdPrefix = o.etcd.EtcdCACert, o.etcd.EtcdCert, o.etcd.EtcdKey, o.etcd.EtcdPrefix
	}
	return cfg
}

func newMigrateCommand(c *cli.Cli) *cobra.Command {
	var o migrateOptions
	cmd := &cobra.Command{
		Use:   "migrate --from URL --to URL",
		Short: "Copy a store into an empty one, as ciphertext, with its key record",
		Long: `Copy every record of a store into another, empty one: a bolt file into an
etcd cluster when a team grows to several hosts, or back. Records stay
encrypted and the key record moves with them, so the same key file (or, with
--autolock, the same unlock key) opens the target. Stop the daemons that use
the source first: a bolt file in use is refused; an etcd source is not
locked, so make sure yourself that no daemon writes to it.`,
		Example: `  sudo secretd store migrate --from bolt:///var/lib/secretd/secrets.db \
      --to etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379 \
      --etcd-cacert ca.pem --etcd-cert client.pem --etcd-key client-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.from == "" || o.to == "" {
				return fmt.Errorf("give both --from and --to: bolt:///path or etcd://host:port[,host:port...]")
			}
			if o.from == o.to {
				return fmt.Errorf("--from and --to are the same store")
			}
			// Opening a bolt URL creates a missing file: a source must exist.
			if p, ok := strings.CutPrefix(o.from, "bolt://"); ok {
				if _, err := os.Stat(p); err != nil {
					return fmt.Errorf("--from %s: %w", o.from, err)
				}
			}
			src, err := daemon.OpenBackend(o.side(o.from), "")
			if err != nil {
				return fmt.Errorf("--from: %w", err)
			}
			defer src.Close()
			dst, err := daemon.OpenBackend(o.side(o.to), "")
			if err != nil {
				return fmt.Errorf("--to: %w", err)
			}
			defer dst.Close()
			secrets, keys, err := store.Copy(dst, src)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Out, "migrated %d secrets (%d records) from %s to %s\n", secrets, keys, src.URL, dst.URL)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "", "store to copy: bolt:///path or etcd://host:port[,host:port...]")
	f.StringVar(&o.to, "to", "", "empty store to copy into: bolt:///path or etcd://host:port[,host:port...]")
	f.StringVar(&o.etcd.EtcdCACert, "etcd-cacert", "", "CA that signed the etcd members' certificates (turns on TLS to etcd)")
	f.StringVar(&o.etcd.EtcdCert, "etcd-cert", "", "client certificate presented to etcd")
	f.StringVar(&o.etcd.EtcdKey, "etcd-key", "", "key of the client certificate for etcd")
	f.StringVar(&o.etcd.EtcdPrefix, "etcd-prefix", "", "prefix of secretd's keys in etcd (default /secretd/)")
	return cmd
}
