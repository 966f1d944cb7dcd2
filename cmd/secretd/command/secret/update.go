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
		Long: `Store a new version of a secret. Every running container that follows it
(no @VERSION pin) sees the new files before the command returns, without a
restart. A container that holds the secret in a file bound at an absolute
target (target=/etc/nginx/conf.d/site.conf) keeps that file until its next
start: each such container is named on stderr, with when it gets the
version. A container the version did not reach is an error.`,
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
			name := sec.Spec.Name
			if name == "" {
				name = args[0]
			}
			c.PrintRotation(fmt.Sprintf("secret '%s'", name), sec.Rotation)
			return nil
		},
	}
	cmd.Flags().IntVar(&o.keep, "keep", 0, "how many versions to keep for pinned containers (default 5)")
	o.data.addFlags(cmd)
	return cmd
}
