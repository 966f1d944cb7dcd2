// Package config holds the `secretd config` commands, one file each: the
// `docker config` commands, plus update, which rotates a config in place.
package config

import (
	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// NewConfigCommand returns `secretd config` and its subcommands.
func NewConfigCommand(c *cli.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Manage configs",
		Example: `  secretd config create site.conf ./site.conf
  secretd config ls
  secretd config update site.conf ./site.conf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(
		newCreateCommand(c),
		newListCommand(c),
		newInspectCommand(c),
		newRemoveCommand(c),
		newUpdateCommand(c),
	)
	return cmd
}

// joinErrors reports every failed reference, as the docker CLI does for
// commands taking several names.
func joinErrors(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return cli.Errors(errs)
}
