package config

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/internal/store"
)

// readData reads a config's data from FILE, or stdin for "-", as `docker
// config create` does. One byte past the cap is read so that the daemon,
// not this command, words the size error, and a huge file is never read
// whole.
func readData(c *cli.Cli, args []string) ([]byte, error) {
	if len(args) < 2 {
		return nil, errors.New("no data given: pass a FILE, or '-' to read stdin")
	}
	name := args[1]
	var r io.Reader = c.In
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("error reading content from %q: %w", name, err)
		}
		defer f.Close()
		r = f
	} else {
		name = "stdin"
	}
	b, err := io.ReadAll(io.LimitReader(r, store.MaxConfigSize))
	if err != nil {
		return nil, fmt.Errorf("error reading content from %q: %w", name, err)
	}
	return b, nil
}
