// Command secretd is secretd's command-line client. Its daemon, store and
// compose commands run in the sibling binaries secretd-daemon and
// secretd-compose (package sibling), so that the client starts fast.
package main

import (
	"os"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command"
)

func main() {
	os.Exit(command.Execute(cli.NewCli(os.Stdin, os.Stdout, os.Stderr)))
}
