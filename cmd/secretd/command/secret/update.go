package secret

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
)

type updateOptions struct {
	keep int
	data dataOptions
}

func newUpdateCommand(c *cli.Cli) *cobra.Command {
	var o updateOptions
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] SECRET [FILE|-]",
		Short: "Store a new version of a secret; running containers see it without a restart",
		Example: `  printf 'new-password' | secretd secret update db_password -
  secretd secret update --generate 32 --keep 3 django_secret_key`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: completion.Secrets(c, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := o.data.read(c, args)
			if err != nil {
				return err
			}
			defer clear(data)
			cl, err := c.Client()
			if err != nil {
				return err
			}
			sec, err := cl.SecretUpdate(cmd.Context(), args[0], data, o.keep)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Out, "%s version %d\n", sec.ID, sec.CurrentVersion)
			return nil
		},
	}
	cmd.Flags().IntVar(&o.keep, "keep", 0, "how many versions to keep for pinned containers (default 5)")
	o.data.addFlags(cmd)
	return cmd
}
