package command

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/sibling"
)

// siblingAnnotation marks a stub: a command whose code is in the sibling
// binary it names.
const siblingAnnotation = "secretd.sibling"

// siblingCommands are the commands that live in a sibling binary. secretd
// lists them under their own name and short help and execs the sibling for
// anything else: their flags, help, completion and run.
// TestStubsMatch keeps Use and Short equal to the real commands'.
var siblingCommands = []struct{ binary, use, short string }{
	{sibling.Daemon, "daemon [OPTIONS]", "Run the secretd daemon (as root, or --rootless for a user's rootless engine)"},
	{sibling.Daemon, "store", "Manage where the daemon keeps its secrets"},
	{sibling.Compose, "compose [OPTIONS] COMMAND [ARGS...]", "Run compose on a compose or stack file, with its secrets served by secretd"},
}

// addSiblingCommands adds each of siblingCommands: the real command when
// built is given one of that name, else a stub.
func addSiblingCommands(root *cobra.Command, built []*cobra.Command) {
	for _, s := range siblingCommands {
		stub := &cobra.Command{
			Use:                s.use,
			Short:              s.short,
			Annotations:        map[string]string{siblingAnnotation: s.binary},
			DisableFlagParsing: true,
			// Execute runs the sibling before cobra reaches the stub; a
			// tree run otherwise (a test's) says where the command is.
			RunE: func(cmd *cobra.Command, args []string) error {
				return &cli.StatusError{Status: 125, Err: siblingOnly(cmd)}
			},
		}
		cmd := stub
		for _, b := range built {
			if b.Name() == stub.Name() {
				cmd = b
			}
		}
		root.AddCommand(cmd)
	}
}

// siblingOf returns the sibling binary that runs the command line args, or
// "" when secretd runs it itself. `help CMD` and the shell completion's
// requests about a sibling's command go to the sibling too.
func siblingOf(root *cobra.Command, args []string) string {
	if len(args) > 0 {
		switch args[0] {
		case "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			args = args[1:]
		}
	}
	cmd, _, err := root.Find(args)
	if err != nil {
		return ""
	}
	for ; cmd != nil; cmd = cmd.Parent() {
		if b := cmd.Annotations[siblingAnnotation]; b != "" {
			return b
		}
	}
	return ""
}

// siblingOnly is the error of a stub run in a tree that Execute did not
// run.
func siblingOnly(cmd *cobra.Command) error {
	return fmt.Errorf("'%s' is in %s: run it through secretd, which runs %s", cmd.CommandPath(), cmd.Annotations[siblingAnnotation], cmd.Annotations[siblingAnnotation])
}
