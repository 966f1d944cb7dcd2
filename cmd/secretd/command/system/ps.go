package system

import (
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/formatter"
)

const defaultPsFormat = "table {{.Container}}\t{{.Name}}\t{{.Secret}}\t{{.Version}}\t{{.Target}}\t{{.Mount}}\t{{.Since}}"

var psHeaders = map[string]string{
	"Container": "CONTAINER", "Name": "NAME", "Secret": "SECRET", "Version": "VERSION",
	"Target": "TARGET", "Mount": "MOUNT", "Since": "SINCE", "SecretID": "SECRET ID",
}

// psRow is one secret held by one container.
type psRow struct {
	Container, Name, Secret, SecretID, Version, Target, Mount, Since string
}

// NewPsCommand returns `secretd ps`.
func NewPsCommand(c *cli.Cli) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS]",
		Short: "List which container holds which secrets, at which version and mount",
		Example: `  secretd ps
  secretd ps --format '{{.Name}} {{.Secret}}@{{.Version}}'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.Client()
			if err != nil {
				return err
			}
			tasks, err := cl.Tasks(cmd.Context())
			if err != nil {
				return err
			}
			return writePs(c, format, tasks, time.Now())
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "format output: 'table', 'table TEMPLATE', 'json' or a Go template")
	return cmd
}

func writePs(c *cli.Cli, format string, tasks []api.Task, now time.Time) error {
	if format == "" || format == formatter.Table {
		format = defaultPsFormat
	}
	sort.Slice(tasks, func(i, j int) bool { return tasks[i].ContainerName < tasks[j].ContainerName })
	var rows []any
	for _, t := range tasks {
		for _, s := range t.Secrets {
			v := strconv.Itoa(s.Version)
			if s.Pinned {
				v += " (pinned)"
			}
			id := t.ContainerID
			if len(id) > 12 {
				id = id[:12]
			}
			rows = append(rows, psRow{
				Container: id, Name: t.ContainerName, Secret: s.Name, SecretID: s.ID,
				Version: v, Target: s.Target, Mount: t.Mount, Since: formatter.Ago(now, t.Since),
			})
		}
	}
	return formatter.Write(c.Out, formatter.Format(format), rows, psHeaders)
}
