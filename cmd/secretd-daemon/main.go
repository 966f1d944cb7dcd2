// Command secretd-daemon runs the secretd commands that link the daemon:
// `secretd daemon` and `secretd store`. secretd execs it for them, from
// beside itself or PREFIX/libexec/secretd; it takes the same command lines
// as secretd.
package main

import (
	"os"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command"
	"github.com/secretd/secretd/cmd/secretd/command/daemoncmd"
)

func main() {
	c := cli.NewCli(os.Stdin, os.Stdout, os.Stderr)
	os.Exit(command.Execute(c, daemoncmd.Commands(c)...))
}
