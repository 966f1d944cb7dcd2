// Command secretd-compose runs `secretd compose`, which links compose-go.
// secretd execs it for that command, from beside itself or
// PREFIX/libexec/secretd; it takes the same command lines as secretd.
package main

import (
	"os"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command"
	"github.com/secretd/secretd/cmd/secretd/command/compose"
)

func main() {
	c := cli.NewCli(os.Stdin, os.Stdout, os.Stderr)
	os.Exit(command.Execute(c, compose.NewComposeCommand(c)))
}
