// Package container holds `secretd container`: live changes to one
// container's secrets, with no restart.
package container

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
)

// NewContainerCommand returns `secretd container` and its subcommands.
func NewContainerCommand(c *cli.Cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "container",
		Short:   "Manage the secrets of one container",
		Example: `  secretd container update web --secret-add api_key --secret-rm old_password`,
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	cmd.AddCommand(newUpdateCommand(c))
	return cmd
}

func newUpdateCommand(c *cli.Cli) *cobra.Command {
	var req api.ContainerUpdateRequest
	cmd := &cobra.Command{
		Use:   "update [OPTIONS] CONTAINER",
		Short: "Grant or revoke secrets and configs of a container live, without a restart",
		Long: `Grant (--secret-add, --config-add) or revoke (--secret-rm, --config-rm)
secrets and configs of a container, as 'docker service update
--secret-add/--secret-rm/--config-add/--config-rm' does for a service but
without redeploying: a running container sees the files appear or vanish at
once. A granted config's target is relative to the volume, as a secret's.

A grant or revoke belongs to one of the container's secretd volumes: a
revoke acts on the volume that holds the secret, a grant on the volume
mounted at /run/secrets or the one given with --volume. It holds across the
container's restarts and is dropped when the volume is removed. A volume
other containers also use is refused unless --shared is given, since they
see the change too.

It prints what the container holds afterwards, each secret as NAME→TARGET,
or "none".`,
		Example: `  secretd container update web --secret-add api_key
  secretd container update web --secret-add source=tls,target=certs/tls.key,mode=0400
  secretd container update web --secret-rm old_password
  secretd container update web --volume web-tls --secret-add tls
  secretd container update web --config-add source=app.ini,target=conf/app.ini --config-rm old.ini`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completion.Container(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := c.Client()
			if err != nil {
				return err
			}
			task, err := cl.ContainerUpdate(cmd.Context(), args[0], req)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.Out, "%s now holds: %s\n", task.ContainerName, holds(task))
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&req.SecretAdd, "secret-add", nil, "grant a secret (`SPEC`: NAME or source=NAME,target=PATH,uid=N,gid=N,mode=0NNN)")
	cmd.Flags().StringArrayVar(&req.SecretRm, "secret-rm", nil, "revoke a secret by `NAME`")
	cmd.Flags().StringArrayVar(&req.ConfigAdd, "config-add", nil, "grant a config (`SPEC`, as --secret-add)")
	cmd.Flags().StringArrayVar(&req.ConfigRm, "config-rm", nil, "revoke a config by `NAME`")
	cmd.Flags().StringVar(&req.Volume, "volume", "", "change this secretd `VOLUME` of the container (default: the one holding the secret, or at /run/secrets)")
	cmd.Flags().BoolVar(&req.Shared, "shared", false, "change a volume that other containers use too")
	cmd.RegisterFlagCompletionFunc("secret-add", completion.SecretFlag(c))
	cmd.RegisterFlagCompletionFunc("secret-rm", completion.GrantedSecrets(c))
	cmd.RegisterFlagCompletionFunc("config-add", completion.ConfigFlag(c))
	cmd.RegisterFlagCompletionFunc("config-rm", completion.ConfigFlag(c))
	return cmd
}

// holds says which secrets a container holds after a change, each as
// NAME→TARGET, or "none" when it holds no secret any more.
func holds(task api.Task) string {
	if len(task.Secrets) == 0 {
		return "none"
	}
	names := make([]string, len(task.Secrets))
	for i, s := range task.Secrets {
		kind := ""
		if s.Kind == "config" {
			kind = "config "
		}
		names[i] = kind + s.Name + "→" + s.Target
	}
	return strings.Join(names, ", ")
}
