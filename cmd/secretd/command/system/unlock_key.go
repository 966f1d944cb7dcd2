package system

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// NewUnlockKeyCommand returns `secretd unlock-key`.
func NewUnlockKeyCommand(c *cli.Cli) *cobra.Command {
	var rotate, quiet bool
	cmd := &cobra.Command{
		Use:   "unlock-key [OPTIONS]",
		Short: "Show or rotate the unlock key of an autolocked daemon",
		Long: `Show or rotate the unlock key of an autolocked daemon.

A new --autolock store does not print its unlock key, so that it never lands
in a log: run 'secretd unlock-key' right after the daemon's first start and
keep the key in a password manager. After a restart only that key opens the
store.`,
		Example: `  secretd unlock-key
  secretd unlock-key --rotate -q > unlock.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.Client()
			if err != nil {
				return err
			}
			var key string
			if rotate {
				key, err = cl.RotateUnlockKey(cmd.Context())
			} else {
				key, err = cl.UnlockKey(cmd.Context())
			}
			if err != nil {
				return err
			}
			if quiet {
				fmt.Fprintln(c.Out, key)
				return nil
			}
			if rotate {
				fmt.Fprint(c.Out, "Successfully rotated the unlock key. ")
			}
			fmt.Fprintf(c.Out, "To unlock secretd after a restart, run 'secretd unlock' and enter:\n\n    %s\n\n"+
				"Keep it safe: without it the store cannot be opened.\n", key)
			return nil
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the unlock key; the old one stops working")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only display the key")
	return cmd
}
