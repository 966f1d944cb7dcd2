// Package command holds the secretd command tree: a root over the client
// and one file per command, as docker/cli lays its commands out.
package command

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
	"github.com/secretd/secretd/cmd/secretd/sibling"

	"github.com/secretd/secretd/cmd/secretd/command/config"
	"github.com/secretd/secretd/cmd/secretd/command/container"
	"github.com/secretd/secretd/cmd/secretd/command/secret"
	"github.com/secretd/secretd/cmd/secretd/command/system"
)

// NewRootCommand returns the secretd command tree. The commands of
// siblingCommands are the ones of built (their constructors are in packages
// daemoncmd and compose), or stubs that run the sibling binary: the secretd
// CLI passes none and so links neither the daemon nor compose-go.
func NewRootCommand(c *cli.Cli, built ...*cobra.Command) *cobra.Command {
	root := &cobra.Command{
		Use:   "secretd",
		Short: "Swarm-grade secrets for standalone Docker containers",
		Long: `secretd keeps secrets encrypted at rest and mounts the ones a container
declares into a read-only tmpfs at /run/secrets, for docker run and compose,
with no Swarm. Run 'secretd daemon' as root, then use the commands below or
the stock docker CLI: DOCKER_HOST=unix:///run/secretd/secretd.sock docker secret ls`,
		Example: `  sudo secretd daemon --metrics-addr 127.0.0.1:9323
  printf 'hunter2' | secretd secret create db_password -
  secretd run --secret db_password -- --rm alpine cat /run/secrets/db_password
  secretd status`,
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
		config.NewConfigCommand(c),
		container.NewContainerCommand(c),
		system.NewUnlockCommand(c),
		system.NewUnlockKeyCommand(c),
		system.NewKeyCommand(c),
		system.NewVersionCommand(c),
		system.NewStatusCommand(c),
		system.NewPsCommand(c),
		container.NewRunCommand(c),
	)
	addSiblingCommands(root, built)
	addBuiltinCommands(root)
	completion.NoFilesByDefault(root)
	optionsInUseLine(root)
	return root
}

// optionsInUseLine keeps cobra from adding "[flags]" to a usage line that
// says [OPTIONS] already ("ls [OPTIONS] [flags]"); docker's say it once.
func optionsInUseLine(cmd *cobra.Command) {
	if strings.Contains(cmd.Use, "[OPTIONS]") {
		cmd.DisableFlagsInUseLine = true
	}
	for _, sub := range cmd.Commands() {
		optionsInUseLine(sub)
	}
}

// Execute runs the command line (os.Args) over the tree of NewRootCommand
// and returns the process exit status. A command that is a stub there
// replaces the process with its sibling binary, run with the same
// arguments.
func Execute(c *cli.Cli, built ...*cobra.Command) int {
	root := NewRootCommand(c, built...)
	err := runSibling(root, os.Args[1:])
	if err == nil {
		err = root.Execute()
	}
	if err == nil {
		return 0
	}
	var se *cli.StatusError
	if errors.As(err, &se) && se.Err == nil {
		return se.Status
	}
	fmt.Fprintln(c.Err, cli.FormatError(err))
	if se != nil {
		return se.Status
	}
	return 1
}

// runSibling execs the sibling binary that runs args, if one does; it
// returns only when there is none to run or it cannot start.
func runSibling(root *cobra.Command, args []string) error {
	name := siblingOf(root, args)
	if name == "" {
		return nil
	}
	if err := sibling.Exec(name, args); err != nil {
		return &cli.StatusError{Status: 125, Err: err}
	}
	return nil
}
