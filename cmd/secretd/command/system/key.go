// Package system holds the client commands about the daemon itself:
// unlocking it, rotating its keys and asking its state and version. The
// commands that run the daemon's own code are in package daemoncmd.
package system

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// NewKeyCommand returns `secretd key` with its `rotate` subcommand.
func NewKeyCommand(c *cli.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "key",
		Short:   "Manage the key-encryption key",
		Example: `  secretd key rotate`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:     "rotate",
		Short:   "Replace the key-encryption key and re-wrap every data key, without downtime",
		Example: `  secretd key rotate`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.Client()
			if err != nil {
				return err
			}
			gen, err := cl.RotateKey(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Out, "key-encryption key rotated: generation %d\n", gen)
			return nil
		},
	})
	return cmd
}
