package container

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/completion"
)

// errNoSecret is dockerArgs' refusal of a run with no --secret or --config.
var errNoSecret = errors.New("secretd run needs at least one --secret or --config: without one, use docker run")

// flagOrderHint explains errNoSecret when the --secret flags sit among
// docker's arguments, where secretd run does not look for them, and shows
// the command with secretd's flags moved first. Other errors pass as they
// are.
func flagOrderHint(cmd *cobra.Command, ours, rest []string, err error) error {
	if !errors.Is(err, errNoSecret) {
		return err
	}
	moved, left := moveOwnFlags(cmd, rest)
	if !hasSecretFlag(moved) {
		return err
	}
	fixed := append(append(append([]string{}, ours...), moved...), "--")
	fixed = append(fixed, left...)
	return fmt.Errorf("secretd run takes its own flags (--secret ...) first, before docker run's or before '--': "+
		"here --secret sits among docker run's arguments\ntry: %s %s", cmd.CommandPath(), shellJoin(fixed))
}

// moveOwnFlags takes secretd run's flags, with their values, out of
// docker's arguments. It stops at the first "--", which hands everything
// after it to docker.
func moveOwnFlags(cmd *cobra.Command, rest []string) (moved, left []string) {
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			return moved, append(left, rest[i:]...)
		}
		name, _, hasValue := strings.Cut(strings.TrimPrefix(a, "--"), "=")
		if !strings.HasPrefix(a, "--") || cmd.LocalFlags().Lookup(name) == nil {
			left = append(left, a)
			continue
		}
		moved = append(moved, a)
		if !hasValue && i+1 < len(rest) {
			i++
			moved = append(moved, rest[i])
		}
	}
	return moved, left
}

func hasSecretFlag(args []string) bool {
	for _, a := range args {
		if a == "--secret" || strings.HasPrefix(a, "--secret=") || a == "--config" || strings.HasPrefix(a, "--config=") {
			return true
		}
	}
	return false
}

// shellJoin quotes each argument for a POSIX shell where it needs it.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./:@,+%") == "" {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// runCompletion completes `secretd run`: --secret's names up to the first
// of docker's arguments, where the shell's own completion takes over.
func runCompletion(c *cli.Cli) completion.Func {
	names := completion.SecretFlag(c)
	configs := completion.ConfigFlag(c)
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		ours, rest, _ := splitRunArgs(cmd, args)
		if rest != nil || (len(args) > 0 && args[len(args)-1] == "--") {
			return nil, cobra.ShellCompDirectiveDefault
		}
		// A flag of ours waiting for its value.
		if n := len(ours); n > 0 && len(args) > 0 && ours[n-1] == args[len(args)-1] && strings.HasPrefix(ours[n-1], "--") &&
			!strings.Contains(ours[n-1], "=") {
			switch ours[n-1] {
			case "--secret":
				return names(cmd, args, toComplete)
			case "--config":
				return configs(cmd, args, toComplete)
			}
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		for flag, complete := range map[string]completion.Func{"--secret=": names, "--config=": configs} {
			if v, ok := strings.CutPrefix(toComplete, flag); ok {
				list, dir := complete(cmd, args, v)
				for i := range list {
					list[i] = flag + list[i]
				}
				return list, dir
			}
		}
		// cobra adds secretd run's flags to a word starting with "-"; any
		// other word here is the image.
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
}
