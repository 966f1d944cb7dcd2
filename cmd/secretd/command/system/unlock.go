package system

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/secretd/secretd/cmd/secretd/cli"
)

// NewUnlockCommand returns `secretd unlock`.
func NewUnlockCommand(c *cli.Cli) *cobra.Command {
	return &cobra.Command{
		Use:   "unlock",
		Short: "Unlock an autolocked daemon; the unlock key is read from stdin, never from arguments",
		Example: `  secretd unlock            # prompts for the key
  secretd unlock < unlock.key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := readUnlockKey(c)
			if err != nil {
				return err
			}
			cl, err := c.Client()
			if err != nil {
				return err
			}
			return cl.Unlock(cmd.Context(), key)
		},
	}
}

func readUnlockKey(c *cli.Cli) (string, error) {
	if f, ok := c.In.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(c.Out, "Enter unlock key: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(c.Out)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(c.In).ReadString('\n')
	line = strings.TrimSpace(line)
	if line == "" {
		if err != nil && err.Error() != "EOF" {
			return "", err
		}
		return "", errors.New("no unlock key on stdin")
	}
	return line, nil
}
