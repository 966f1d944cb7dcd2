package config

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
)

func newRemoveCommand(c *cli.Cli) *cobra.Command {
	return &cobra.Command{
		Use:               "rm CONFIG [CONFIG...]",
		Aliases:           []string{"remove"},
		Short:             "Remove one or more configs (refused while a container uses them)",
		Example:           `  secretd config rm site.conf app.ini`,
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: completion.Configs(c, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.Client()
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				if err := cl.ConfigRemove(cmd.Context(), ref); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(c.Out, ref)
			}
			return joinErrors(errs)
		},
	}
}
