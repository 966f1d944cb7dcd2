// Package completion completes the names a secretd command takes (secrets,
// containers) for the shell, from what the daemon knows, and says where no
// local file belongs.
package completion

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/filters"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// Func is cobra's completion function for arguments and flag values.
type Func = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

// timeout bounds a daemon lookup: a shell waiting on a TAB is worse than
// no names.
const timeout = 3 * time.Second

// NoFiles is for arguments and flag values that are never local files.
var NoFiles Func = cobra.NoFileCompletions

// secretNames asks the daemon for the secret names starting with prefix,
// leaving out those in skip.
func secretNames(c *cli.Cli, prefix string, skip []string) []string {
	cl, err := c.Client()
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	list, err := cl.SecretList(ctx, filters.NewArgs())
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil
	}
	var out []string
	for _, s := range list {
		if n := s.Spec.Name; strings.HasPrefix(n, prefix) && !slices.Contains(skip, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Secrets completes secret names for the first max arguments (0: every
// argument), each name once; later arguments complete as files (FILE).
func Secrets(c *cli.Cli, max int) Func {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if max > 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return secretNames(c, toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// SecretFlag completes a flag whose value starts with a secret name (NAME
// or a source=NAME,... spec): the names, as a bare NAME is a whole spec.
func SecretFlag(c *cli.Cli) Func {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return secretNames(c, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	}
}

// configNames asks the daemon for the config names starting with prefix,
// leaving out those in skip.
func configNames(c *cli.Cli, prefix string, skip []string) []string {
	cl, err := c.Client()
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	t, err := cl.ConfigTable(ctx, filters.NewArgs())
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil
	}
	var out []string
	for _, n := range t.Names {
		if strings.HasPrefix(n, prefix) && !slices.Contains(skip, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Configs completes config names for the first max arguments (0: every
// argument), each name once; later arguments complete as files (FILE).
func Configs(c *cli.Cli, max int) Func {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if max > 0 && len(args) >= max {
			return nil, cobra.ShellCompDirectiveDefault
		}
		return configNames(c, toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// ConfigFlag completes a flag whose value starts with a config name.
func ConfigFlag(c *cli.Cli) Func {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return configNames(c, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	}
}

// containerNames asks the daemon for the names of the containers holding
// secretd secrets that start with prefix, leaving out those in skip.
func containerNames(c *cli.Cli, prefix string, skip []string) []string {
	cl, err := c.Client()
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tasks, err := cl.Tasks(ctx)
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil
	}
	var out []string
	for _, t := range tasks {
		n := t.ContainerName
		if n != "" && strings.HasPrefix(n, prefix) && !slices.Contains(skip, n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Containers completes names of containers that hold secretd secrets: the
// ones `secretd ps` lists and `secretd container update` manages.
func Containers(c *cli.Cli) Func {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return containerNames(c, toComplete, args), cobra.ShellCompDirectiveNoFileComp
	}
}

// Container completes one container name, then nothing.
func Container(c *cli.Cli) Func {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return containerNames(c, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	}
}

// GrantedSecrets completes the secrets the container named by the first
// argument holds (for --secret-rm), or every secret name before a
// container is given.
func GrantedSecrets(c *cli.Cli) Func {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) == 0 {
			return secretNames(c, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
		}
		cl, err := c.Client()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		tasks, err := cl.Tasks(ctx)
		if err != nil {
			cobra.CompErrorln(err.Error())
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var out []string
		for _, t := range tasks {
			if t.ContainerName != strings.TrimPrefix(args[0], "/") && !strings.HasPrefix(t.ContainerID, args[0]) {
				continue
			}
			for _, s := range t.Secrets {
				if strings.HasPrefix(s.Name, toComplete) && !slices.Contains(out, s.Name) {
					out = append(out, s.Name)
				}
			}
		}
		slices.Sort(out)
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}

// fileFlags are the flags whose value is a local path: the shell completes
// files for them, and for no other flag.
var fileFlags = []string{
	"tlscacert", "tlscert", "tlskey", "data-root", "mount-root", "key-file", "plugin-dir",
	"audit-log", "etcd-cacert", "etcd-cert", "etcd-key", "dir",
	// docker-compose's, should a command pass them on.
	"file", "env-file", "project-directory",
}

// NoFilesByDefault walks the command tree: an argument or flag value
// without a completion of its own completes no local file, except the flags
// in fileFlags (paths) and commands that say otherwise.
func NoFilesByDefault(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(cmd *cobra.Command) {
		if cmd.ValidArgsFunction == nil && len(cmd.ValidArgs) == 0 && !cmd.DisableFlagParsing {
			cmd.ValidArgsFunction = NoFiles
		}
		register := func(f *pflag.Flag) {
			if f.Value.Type() == "bool" || slices.Contains(fileFlags, f.Name) {
				return
			}
			if _, ok := cmd.GetFlagCompletionFunc(f.Name); ok {
				return
			}
			cmd.RegisterFlagCompletionFunc(f.Name, NoFiles)
		}
		cmd.LocalNonPersistentFlags().VisitAll(register)
		cmd.PersistentFlags().VisitAll(register)
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
