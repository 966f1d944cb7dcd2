// Package secret holds the `secretd secret` commands, one file each.
package secret

import (
	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// NewSecretCommand returns `secretd secret` and its subcommands.
func NewSecretCommand(c *cli.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "secret",
		Short: "Manage secrets",
		Example: `  printf 'hunter2' | secretd secret create db_password -
  secretd secret ls
  secretd secret update db_password ./new-password.txt`,
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
