package daemoncmd

import (
	"fmt"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/pflag"

	"github.com/secretd/secretd/internal/daemon"
	"github.com/secretd/secretd/internal/driver"
	"github.com/secretd/secretd/internal/source/shell"
)

// addDeliveryFlags adds the flags of the container side: the volume driver,
// where mounts live and which engine to follow.
func addDeliveryFlags(f *pflag.FlagSet, cfg *daemon.Config) {
	f.StringVar(&cfg.DriverName, "driver-name", "secretd", "volume driver name: containers use --mount volume-driver=NAME")
	f.StringVar(&cfg.MountRoot, "mount-root", "/run/secretd/mounts", "where each container's tmpfs is mounted on the host")
	f.StringVar(&cfg.DockerHost, "docker-host", "", "Docker Engine to follow (default $DOCKER_HOST or unix:///var/run/docker.sock)")
	f.StringVar(&cfg.PluginDir, "plugin-dir", driver.DefaultPluginDir, "where dockerd discovers plugin sockets")
	f.IntVar(&cfg.SpareMounts, "spare-mounts", 8, "tmpfs mounts kept ready so a container start does not wait on mount(2), filled when a container is created; 0 mounts and fills at each start")
	f.DurationVar(&cfg.MountGrace, "mount-grace", 30*time.Second, "how long a new mount whose container is not running yet is kept by a resync")
	f.StringVar(&cfg.SecretDriverDir, "secret-driver-dir", "", "where secret-driver plugins are found: NAME.sock, NAME.spec and NAME.json in this directory (default: Docker's /run/docker/plugins, /etc/docker/plugins and /usr/lib/docker/plugins)")
	f.StringVar(&cfg.ShellConfig, "shell-driver-config", shell.DefaultConfigPath, "host-wide configuration of the built-in shell secret driver (a missing file is an empty one)")
	f.BoolVar(&cfg.TLSSecretCommands, "tls-secret-commands", false, "let TLS clients name a shell driver secret's own commands, which run as root (default: only root on the unix socket may)")
	f.StringSliceVar(&cfg.TrustCommandsFrom, "trust-commands-from", nil, "on a shared etcd store, also run the per-secret shell commands the root of these hosts (--host-id) named; '*' trusts every host (default: only this host's)")
	cfg.MaxMountSize = daemon.DefaultMaxMountSize
	f.Var((*sizeValue)(&cfg.MaxMountSize), "max-mount-size", "largest total of plaintext one container mount may hold (e.g. 4MiB, 512KiB); a Mount asking for more fails")
}

// sizeValue is a byte count given as 4MiB, 512k or 1048576.
type sizeValue int64

func (v *sizeValue) String() string { return units.BytesSize(float64(*v)) }
func (v *sizeValue) Type() string   { return "bytes" }
func (v *sizeValue) Set(s string) error {
	n, err := units.RAMInBytes(s)
	if err != nil || n < 1 {
		return fmt.Errorf("%q is not a size: use a number of bytes or one like 4MiB or 512KiB", s)
	}
	*v = sizeValue(n)
	return nil
}
