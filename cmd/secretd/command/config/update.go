package config

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
)

func newUpdateCommand(c *cli.Cli) *cobra.Command {
	var keep int
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONFIG FILE|-",
		Short: "Store a new version of a config; running containers see it without a restart",
		Long: `Store a new version of a config, in place, as 'secretd secret update' does
for a secret: every running container that uses it, or whose template reads
it, gets the new file (or rendering) before this returns, and its
secretd.on-update action runs. A container that pins CONFIG@V keeps version
V. The update fails, naming them, when a container kept the old file. A
container that holds the config in a file bound at an absolute target
(/etc/nginx/conf.d/site.conf) keeps that file until its next start: each
such container is named on stderr, with when it gets the version.`,
		Example: `  secretd config update site.conf ./site.conf
  secretd config update --keep 3 app.ini - < app.ini.tmpl`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: completion.Configs(c, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readData(c, args)
			if err != nil {
				return err
			}
			cl, err := c.Client()
			if err != nil {
				return err
			}
			cfg, err := cl.ConfigUpdate(cmd.Context(), args[0], data, keep)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Out, "%s version %d\n", cfg.ID, cfg.CurrentVersion)
			name := cfg.Spec.Name
			if name == "" {
				name = args[0]
			}
			c.PrintRotation(fmt.Sprintf("config '%s'", name), cfg.Rotation)
			return nil
		},
	}
	cmd.Flags().IntVar(&keep, "keep", 0, "how many versions to keep for pinned containers (default 5)")
	return cmd
}
