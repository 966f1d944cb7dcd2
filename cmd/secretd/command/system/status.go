package system

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/formatter"
)

// NewStatusCommand returns `secretd status`.
func NewStatusCommand(c *cli.Cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the daemon is locked, its store, its engine connection and its counts",
		Example: `  secretd status
  secretd status --format '{{.Locked}}'
  secretd status --format '{{.Goroutines}} {{.OpenFDs}}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.Client()
			if err != nil {
				return err
			}
			st, err := cl.Status(cmd.Context())
			if err != nil {
				return err
			}
			if format != "" {
				return formatter.Write(c.Out, formatter.Format(format), []any{st}, nil)
			}
			locked := "no"
			if st.Locked {
				locked = "yes: run 'secretd unlock'"
			}
			engine := st.Engine
			if st.EngineError != "" {
				engine += " (" + st.EngineError + ")"
			}
			fmt.Fprintf(c.Out, "Version:    %s\nLocked:     %s\nAutolock:   %t\nStore:      %s\nEngine:     %s\nSecrets:    %d\nMounts:     %d (%d spare)\nGoroutines: %d\nOpen FDs:   %d\n",
				st.Version, locked, st.Autolock, st.Store, engine, st.Secrets, st.Mounts, st.SpareMounts, st.Goroutines, st.OpenFDs)
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "format output using a Go template, or 'json'")
	return cmd
}
