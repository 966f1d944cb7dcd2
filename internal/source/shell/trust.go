package shell

import (
	"fmt"
	"slices"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/source"
)

// A command runs as the daemon's user, root: only root may name one (see
// docs/security.md). The commands of the host's configuration file are
// root's by where they live. A per-secret command is root's when the API
// took it from root (a uid 0 peer on the unix socket, or a TLS client
// when the daemon allows it) and stamped the secret with that host's ID;
// the record's MAC keeps the stamp. Trust decides at every run whether
// the stamp is one this host accepts.

// TrustAll, given as a trusted host, trusts every host of a shared store.
const TrustAll = "*"

// Trust says whose per-secret commands this host runs.
type Trust struct {
	// Host is this host's ID: the stamp its own root's commands carry.
	Host string
	// Shared says other hosts write the store too: a command another
	// host's root named runs here only when Hosts names that host.
	Shared bool
	// Hosts are the other hosts whose root's commands this host runs
	// (--trust-commands-from); TrustAll names every host.
	Hosts []string
}

// NamesCommands reports whether a secret's options name commands of their
// own instead of using the host configuration's.
func NamesCommands(opts map[string]string) bool {
	for _, k := range []string{OptLookup, OptList, OptStore, OptDelete} {
		if _, ok := opts[k]; ok {
			return true
		}
	}
	return false
}

// check refuses to run the op command a secret's options name unless the
// host that stamped it (by) is one this host trusts.
func (t Trust) check(req source.Request, op string) error {
	switch {
	case req.CommandsBy == "":
		return fmt.Errorf("%w: the secret names its own %s command, and no host's root is recorded as having named it (it was created before secretd checked who names commands, when any API user could): recreate the secret as root, or name the command in %s",
			errdefs.ErrForbidden, op, DefaultConfigPath)
	case !t.Shared, req.CommandsBy == t.Host, slices.Contains(t.Hosts, req.CommandsBy), slices.Contains(t.Hosts, TrustAll):
		return nil
	}
	return fmt.Errorf("%w: the secret's %s command was named on host %q, and this host runs only the commands its own root named: name the command in this host's %s, or start this host's secretd with --trust-commands-from %s",
		errdefs.ErrForbidden, op, req.CommandsBy, DefaultConfigPath, req.CommandsBy)
}
