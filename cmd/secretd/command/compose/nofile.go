package compose

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	composeerrdefs "github.com/compose-spec/compose-go/v2/errdefs"
)

// stackFileNames are names Swarm stack files often have, which compose
// does not look for by itself.
var stackFileNames = []string{"stack.yml", "stack.yaml", "docker-stack.yml", "docker-stack.yaml"}

// noFileHint words compose-go's "no configuration file provided" for the
// user who ran `up -f stack.yml` and then `ps` without -f: which names are
// looked for, and the stack file that is there, if any.
func (o options) noFileHint(err error) error {
	if !errors.Is(err, composeerrdefs.ErrNotFound) || len(o.files) > 0 || os.Getenv("COMPOSE_FILE") != "" ||
		!strings.Contains(err.Error(), "no configuration file provided") {
		return err
	}
	dir := o.projectDir
	if dir == "" {
		dir, _ = os.Getwd()
	}
	hint := "give the file with -f FILE, as every command needs it"
	for _, name := range stackFileNames {
		if _, serr := os.Stat(filepath.Join(dir, name)); serr == nil {
			hint = fmt.Sprintf("give it with -f, as for up: secretd compose -f %s ...", name)
			break
		}
	}
	return fmt.Errorf("no compose file in %s (looked for %s): %s", dir, strings.Join(composecli.DefaultFileNames, ", "), hint)
}
