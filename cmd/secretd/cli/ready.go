package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/secretd/secretd/errdefs"
)

// DefaultVolumeDriver is the volume driver name a daemon serves unless its
// --driver-name says otherwise.
const DefaultVolumeDriver = "secretd"

// VolumeDriver checks, before a command has docker start containers with
// secretd volumes, that the daemon answers and is unlocked, and returns the
// volume driver name to give docker: driver when the user named one (""
// when not), refused unless the daemon serves it, else the daemon's own.
//
// Without this check docker finds out by itself: it waits 15 to 30 s for a
// plugin that is not there, then fails with its own words, or, for a
// mistyped driver name, as an image it cannot find, which it goes on to
// pull from a registry.
func (c *Cli) VolumeDriver(ctx context.Context, driver string) (string, error) {
	cl, err := c.Client()
	if err != nil {
		return "", err
	}
	st, err := cl.Status(ctx)
	if err != nil {
		return "", err
	}
	if st.Locked {
		return "", fmt.Errorf("%w first; nothing was started", errdefs.ErrLocked)
	}
	switch {
	case st.VolumeDriver == "":
		// A daemon that predates the field: trust the name given.
		if driver == "" {
			driver = DefaultVolumeDriver
		}
		return driver, nil
	case driver == "":
		return st.VolumeDriver, nil
	case driver == st.VolumeDriver || strings.HasPrefix(driver, st.VolumeDriver+":"):
		// A managed plugin is also known to the engine as NAME:TAG.
		return driver, nil
	}
	at := ""
	if h, ok := cl.(interface{ Host() string }); ok {
		at = " at " + h.Host()
	}
	return "", fmt.Errorf("volume driver %q is not the one secretd serves: the daemon%s serves %q; leave out --driver to use it, "+
		"or point -H or $SECRETD_HOST at the daemon started with --driver-name %s", driver, at, st.VolumeDriver, driver)
}
