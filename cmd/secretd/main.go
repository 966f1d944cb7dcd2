// Command secretd is the secretd daemon and its command-line client.
package main

import (
	"os"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/cmd/secretd/command"
)

func main() {
	os.Exit(command.Execute(cli.NewCli(os.Stdin, os.Stdout, os.Stderr)))
}
