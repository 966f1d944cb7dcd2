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
