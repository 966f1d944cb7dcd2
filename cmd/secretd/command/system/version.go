package system

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
)

// NewVersionCommand returns `secretd version`.
func NewVersionCommand(c *cli.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the secretd version of this client and of the daemon",
		Example: `  secretd version
  SECRETD_HOST=unix:///run/secretd/secretd.sock secretd version`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(c.Out, "Client:\n Version:     %s\n Go version:  %s\n OS/Arch:     %s/%s\n",
				cli.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			cl, err := c.Client()
			if err != nil {
				return err
			}
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Out, "\nServer:\n Version:     %s\n API version: %s (Docker Engine API shape, minimum %s)\n", st.Version, api.APIVersion, api.MinAPIVersion)
			return nil
		},
	}
}
