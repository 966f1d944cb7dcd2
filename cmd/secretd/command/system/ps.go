package system

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
	"github.com/secretd/secretd/cmd/secretd/command/formatter"
)

const defaultPsFormat = "table {{.Container}}\t{{.Name}}\t{{.Secret}}\t{{.Version}}\t{{.Target}}\t{{.Mount}}\t{{.Since}}"

var psHeaders = map[string]string{
	"Container": "CONTAINER", "Name": "NAME", "Secret": "SECRET", "Version": "VERSION",
	"Target": "TARGET", "Mount": "MOUNT", "Since": "SINCE", "SecretID": "SECRET ID",
	"Volume": "VOLUME", "ContainerID": "CONTAINER ID", "Kind": "KIND", "Reads": "READS",
}

// psRow is one secret or config held by one container. Secret names a
// config as config:NAME; Reads lists what a template's rendering read.
type psRow struct {
	Container, ContainerID, Name, Secret, SecretID, Version, Target, Volume, Mount, Since, Kind, Reads string
}

// psOptions are `secretd ps`'s flags and arguments.
type psOptions struct {
	quiet   bool
	format  string
	filters []string
	// containers are the CONTAINER arguments: names or IDs (a prefix will
	// do), each of which must hold secrets.
	containers []string
}

// psFilterKeys are the keys --filter takes.
var psFilterKeys = []string{"config", "container", "secret", "volume"}

// NewPsCommand returns `secretd ps`.
func NewPsCommand(c *cli.Cli) *cobra.Command {
	var o psOptions
	cmd := &cobra.Command{
		Use:   "ps [OPTIONS] [CONTAINER...]",
		Short: "List which container holds which secrets and configs, at which version and mount",
		Long: `List the secrets and configs each running container holds through
secretd: one line per secret (or config, shown as config:NAME) and
container. CONTAINER arguments (names or IDs) limit the list to those
containers; each must hold secrets. --format '{{.Reads}}' shows what a
rendered template read.`,
		Example: `  secretd ps
  secretd ps redis
  secretd ps --filter secret=db_password
  secretd ps --filter config=site.conf
  secretd ps -q --filter volume=app_secrets
  secretd ps --format '{{.Name}} {{.Secret}}@{{.Version}}'`,
		ValidArgsFunction: completion.Containers(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.containers = args
			match, err := o.matcher()
			if err != nil {
				return err
			}
			cl, err := c.Client()
			if err != nil {
				return err
			}
			tasks, err := cl.Tasks(cmd.Context())
			if err != nil {
				return err
			}
			tasks, err = o.pick(tasks, match)
			if err != nil {
				// What was found is listed; the error names what was not.
				if werr := writePs(c, o, tasks, time.Now()); werr != nil {
					return werr
				}
				return err
			}
			return writePs(c, o, tasks, time.Now())
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&o.quiet, "quiet", "q", false, "only display container IDs")
	f.StringVar(&o.format, "format", "", "format output: 'table', 'table TEMPLATE', 'json' or a Go template")
	f.StringArrayVarP(&o.filters, "filter", "f", nil, "filter output (container=NAME|ID, secret=NAME|ID, config=NAME|ID, volume=NAME), repeatable")
	cmd.RegisterFlagCompletionFunc("filter", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		keys := make([]string, len(psFilterKeys))
		for i, k := range psFilterKeys {
			keys[i] = k + "="
		}
		return keys, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
	})
	cmd.RegisterFlagCompletionFunc("format", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{formatter.Table, formatter.JSON}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// psMatch holds the --filter values by key. As with docker, values of one
// key are alternatives and different keys must all match.
type psMatch map[string][]string

func (o psOptions) matcher() (psMatch, error) {
	m := psMatch{}
	for _, kv := range o.filters {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", kv)
		}
		if !slices.Contains(psFilterKeys, k) {
			return nil, fmt.Errorf("invalid filter '%s': use container=, secret=, config= or volume=", k)
		}
		m[k] = append(m[k], v)
	}
	return m, nil
}

// resolve returns what ref names among keys (each item's name and ID), as
// docker resolves a reference: a full ID or an exact name, else a unique
// prefix of an ID. A name that is also the start of some ID stays a name.
func resolve(ref string, keys [][2]string) func(name, id string) bool {
	ref = strings.TrimPrefix(ref, "/")
	for _, k := range keys {
		if k[0] == ref || k[1] == ref {
			return func(name, id string) bool { return name == ref || id == ref }
		}
	}
	var ids []string
	for _, k := range keys {
		if ref != "" && strings.HasPrefix(k[1], ref) && !slices.Contains(ids, k[1]) {
			ids = append(ids, k[1])
		}
	}
	return func(name, id string) bool { return len(ids) == 1 && id == ids[0] }
}

// pick keeps the tasks, and within them the secrets, that the CONTAINER
// arguments and the filters name. A CONTAINER argument that names no task
// is an error; what the others found is still returned.
func (o psOptions) pick(tasks []api.Task, m psMatch) ([]api.Task, error) {
	var ctrKeys, secretKeys, configKeys [][2]string
	for _, t := range tasks {
		ctrKeys = append(ctrKeys, [2]string{t.ContainerName, t.ContainerID})
		for _, s := range t.Secrets {
			if s.Kind == "config" {
				configKeys = append(configKeys, [2]string{s.Name, s.ID})
			} else {
				secretKeys = append(secretKeys, [2]string{s.Name, s.ID})
			}
		}
	}
	resolveAll := func(refs []string, keys [][2]string) []func(string, string) bool {
		out := make([]func(string, string) bool, len(refs))
		for i, ref := range refs {
			out[i] = resolve(ref, keys)
		}
		return out
	}
	anyOf := func(fs []func(string, string) bool, name, id string) bool {
		return slices.ContainsFunc(fs, func(f func(string, string) bool) bool { return f(name, id) })
	}
	args := resolveAll(o.containers, ctrKeys)
	var missing []string
	for i, ref := range o.containers {
		if !slices.ContainsFunc(tasks, func(t api.Task) bool { return args[i](t.ContainerName, t.ContainerID) }) {
			missing = append(missing, ref)
		}
	}
	ctrs, secrets, configs := resolveAll(m["container"], ctrKeys), resolveAll(m["secret"], secretKeys), resolveAll(m["config"], configKeys)
	var out []api.Task
	for _, t := range tasks {
		if len(args) > 0 && !anyOf(args, t.ContainerName, t.ContainerID) {
			continue
		}
		if len(ctrs) > 0 && !anyOf(ctrs, t.ContainerName, t.ContainerID) {
			continue
		}
		if v := m["volume"]; len(v) > 0 && !slices.Contains(v, t.Volume) {
			continue
		}
		if len(secrets)+len(configs) > 0 {
			var keep []api.TaskSecret
			for _, s := range t.Secrets {
				if s.Kind == "config" && anyOf(configs, s.Name, s.ID) || s.Kind != "config" && anyOf(secrets, s.Name, s.ID) {
					keep = append(keep, s)
				}
			}
			if len(keep) == 0 {
				continue
			}
			t.Secrets = keep
		}
		out = append(out, t)
	}
	if len(missing) > 0 {
		return out, fmt.Errorf("no container holding secretd secrets is named %s: see 'secretd ps' for those that do", strings.Join(missing, ", "))
	}
	return out, nil
}

func writePs(c *cli.Cli, o psOptions, tasks []api.Task, now time.Time) error {
	format := o.format
	switch {
	case o.quiet && format == "":
		return writePsQuiet(c, tasks)
	case format == "" || format == formatter.Table:
		format = defaultPsFormat
	}
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].ContainerName < tasks[j].ContainerName })
	var rows []any
	for _, t := range tasks {
		for _, s := range t.Secrets {
			v := strconv.Itoa(s.Version)
			if s.Pinned {
				v += " (pinned)"
			}
			name, kind := s.Name, "secret"
			if s.Kind == "config" {
				name, kind = "config:"+s.Name, "config"
			}
			rows = append(rows, psRow{
				Container: shortID(t.ContainerID), ContainerID: t.ContainerID, Name: t.ContainerName,
				Secret: name, SecretID: s.ID, Version: v, Target: s.Target,
				Volume: t.Volume, Mount: t.Mount, Since: formatter.Ago(now, t.Since),
				Kind: kind, Reads: strings.Join(s.Reads, ","),
			})
		}
	}
	return formatter.Write(c.Out, formatter.Format(format), rows, psHeaders)
}

// writePsQuiet prints each container's short ID once, as docker ps -q does.
func writePsQuiet(c *cli.Cli, tasks []api.Task) error {
	sort.SliceStable(tasks, func(i, j int) bool { return tasks[i].ContainerName < tasks[j].ContainerName })
	var seen []string
	for _, t := range tasks {
		id := shortID(t.ContainerID)
		if slices.Contains(seen, id) {
			continue
		}
		seen = append(seen, id)
		if _, err := fmt.Fprintln(c.Out, id); err != nil {
			return err
		}
	}
	return nil
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
