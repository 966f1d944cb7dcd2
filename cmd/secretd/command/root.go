// Package command holds the secretd command tree: a root over the client
// and one file per command, as docker/cli lays its commands out.
package command

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"

	"github.com/secretd/secretd/cmd/secretd/command/container"
	"github.com/secretd/secretd/cmd/secretd/command/secret"
	"github.com/secretd/secretd/cmd/secretd/command/system"
)

// NewRootCommand returns the secretd command tree.
func NewRootCommand(c *cli.Cli) *cobra.Command {
	root := &cobra.Command{
		Use:   "secretd",
		Short: "Swarm-grade secrets for standalone Docker containers",
		Long: `secretd keeps secrets encrypted at rest and mounts the ones a container
declares into a read-only tmpfs at /run/secrets, for docker run and compose,
with no Swarm. Run 'secretd daemon' as root, then use the commands below or
the stock docker CLI: DOCKER_HOST=unix:///run/secretd/secretd.sock docker secret ls`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       cli.Version,
	}
	root.SetIn(c.In)
	root.SetOut(c.Out)
	root.SetErr(c.Err)
	f := root.PersistentFlags()
	f.StringArrayVarP(&c.Hosts, "host", "H", nil, "daemon socket to connect to, or for 'daemon' to listen on, repeatable (default $SECRETD_HOST or unix:///run/secretd/secretd.sock)")
	f.StringVar(&c.TLSCACert, "tlscacert", "", "trust certs signed only by this CA (tcp hosts; for the daemon, the CA of client certificates)")
	f.StringVar(&c.TLSCert, "tlscert", "", "path to TLS certificate file (tcp hosts)")
	f.StringVar(&c.TLSKey, "tlskey", "", "path to TLS key file (tcp hosts)")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &cli.StatusError{Status: 125, Err: fmt.Errorf("%w\nSee '%s --help'", err, cmd.CommandPath())}
	})

	root.AddCommand(
		secret.NewSecretCommand(c),
		container.NewContainerCommand(c),
		system.NewDaemonCommand(c),
		system.NewUnlockCommand(c),
		system.NewUnlockKeyCommand(c),
		system.NewKeyCommand(c),
		system.NewVersionCommand(c),
		system.NewStatusCommand(c),
		system.NewPsCommand(c),
		system.NewStoreCommand(c),
	)
	return root
}

// Execute runs the command line and returns the process exit status.
func Execute(c *cli.Cli) int {
	root := NewRootCommand(c)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintln(c.Err, cli.FormatError(err))
	var se *cli.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 1
}
