package system

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/formatter"
)

// NewStatusCommand returns `secretd status`.
func NewStatusCommand(c *cli.Cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show whether the daemon is locked, its store, engine connection, volume driver, noswap and counts",
		Example: `  secretd status
  secretd status --format '{{.Locked}}'
  secretd status --format '{{.Goroutines}} {{.OpenFDs}}'
  secretd status --format '{{.Noswap}} {{.SwapOn}}'`,
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
			return writeStatus(c, format, st)
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "format output using a Go template, or 'json'")
	return cmd
}

func writeStatus(c *cli.Cli, format string, st api.Status) error {
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
	fmt.Fprintf(c.Out, "Version:    %s\nLocked:     %s\nAutolock:   %t\nStore:      %s\nEngine:     %s\n",
		st.Version, locked, st.Autolock, st.Store, engine)
	if st.VolumeDriver != "" {
		fmt.Fprintf(c.Out, "Driver:     %s (volume-driver=%s)\n", st.VolumeDriver, st.VolumeDriver)
	}
	fmt.Fprintf(c.Out, "Secrets:    %d\nConfigs:    %d\nMounts:     %d (%d spare)\nNoswap:     %s\nGoroutines: %d\nOpen FDs:   %d\n",
		st.Secrets, st.Configs, st.Mounts, st.SpareMounts, noswapLine(st), st.Goroutines, st.OpenFDs)
	return nil
}

// noswapLine says whether secrets can reach swap, warning only when they can.
func noswapLine(st api.Status) string {
	switch {
	case st.NoswapError != "":
		return "unknown: WARNING the probe for noswap failed (" + st.NoswapError + "), so mounts go without it; see the daemon log"
	case st.Noswap:
		return "yes: secrets never reach swap"
	case st.SwapOn:
		return "no (needs Linux 6.4+): WARNING swap is on, secrets may be written to it; turn swap off or upgrade the kernel"
	}
	return "no (needs Linux 6.4+); swap is off"
}
