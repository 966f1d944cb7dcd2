package command

import (
	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command/compose"
	"github.com/secretd/secretd/cmd/secretd/command/daemoncmd"
)

// newFullRoot is the whole tree, as the docs tool builds it: the tests of
// help, docs and completion cover the siblings' commands too.
func newFullRoot(c *cli.Cli) *cobra.Command {
	return NewRootCommand(c, append(daemoncmd.Commands(c), compose.NewComposeCommand(c))...)
}
