package daemoncmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/internal/daemon"
	"github.com/secretd/secretd/internal/rootless"
)

type rootlessOptions struct {
	on bool
	// enginePID marks the daemon proper, started by the supervisor inside
	// the namespaces of the engine with this pid.
	enginePID int
}

func addRootlessFlags(f *pflag.FlagSet, o *rootlessOptions) {
	f.BoolVar(&o.on, "rootless", false, "serve this user's rootless Docker engine (run as that user): API at $XDG_RUNTIME_DIR/secretd/secretd.sock, data in $XDG_DATA_HOME/secretd")
	f.IntVar(&o.enginePID, rootless.EnginePIDFlag, 0, "for secretd's own use")
	f.MarkHidden(rootless.EnginePIDFlag)
}

// runRootless applies the rootless defaults to every flag left unset, then
// runs either the supervisor (on the host) or, when the supervisor started
// this process inside the engine's namespaces, the daemon proper.
func runRootless(ctx context.Context, cmd *cobra.Command, c *cli.Cli, o *daemonOptions) error {
	if !o.rootless.on {
		return fmt.Errorf("--%s is for secretd's own use: run 'secretd daemon --rootless'", rootless.EnginePIDFlag)
	}
	if o.rootless.enginePID == 0 && os.Geteuid() == 0 {
		return errors.New("--rootless is for the rootless Docker engine of an unprivileged user: run it as that user, not as root (as root, run 'secretd daemon' without --rootless)")
	}
	if o.cfg.Group != "" {
		return errors.New("--group does not apply with --rootless: the API socket belongs to the user who runs secretd (mode 0660); leave --group out")
	}
	paths, err := rootless.DefaultPaths()
	if err != nil {
		return err
	}
	if err := rootless.CheckRuntimeDir(paths.RuntimeDir); err != nil {
		return err
	}
	f := cmd.Flags()
	if !f.Changed("data-root") {
		o.cfg.DataRoot = paths.DataRoot
	}
	if !f.Changed("mount-root") {
		o.cfg.MountRoot = paths.MountRoot
	}
	if !f.Changed("plugin-dir") {
		o.cfg.PluginDir = paths.PluginDir
	}
	if !f.Changed("docker-host") {
		o.cfg.DockerHost = "unix://" + filepath.Join(paths.RuntimeDir, "docker.sock")
	}
	if len(o.cfg.Hosts) == 0 {
		o.cfg.Hosts = []string{paths.Host}
	}
	if o.rootless.enginePID == 0 {
		return rootless.Supervisor{
			RuntimeDir: paths.RuntimeDir,
			Args:       os.Args[1:],
			Log:        o.cfg.Log,
			Stdout:     c.Out,
			Stderr:     c.Err,
			StateDir:   o.cfg.DataRoot,
		}.Run(ctx)
	}
	// The daemon proper makes the socket's directory, 0700: only this
	// user reaches the API.
	if err := rootless.PrepareRuntimeDir(paths.RuntimeDir); err != nil {
		return err
	}
	return runInEngine(ctx, o.cfg, o.rootless.enginePID)
}

// runInEngine is the daemon proper inside the engine's namespaces. When the
// engine stops it wipes every mount of that namespace and exits with
// rootless.EngineGoneStatus, so the supervisor starts it again in the next
// engine's namespaces.
func runInEngine(ctx context.Context, cfg daemon.Config, pid int) error {
	if err := rootless.InEngineNamespaces(pid); err != nil {
		return err
	}
	ctx, gone, err := rootless.UntilExit(ctx, pid)
	if err != nil {
		return err
	}
	err = daemon.Run(ctx, cfg)
	if !gone() {
		return err
	}
	if err != nil {
		cfg.Log.Error("daemon stopped with an error as the engine stopped", "err", err)
	}
	n, werr := rootless.WipeMounts(cfg.MountRoot)
	if werr != nil {
		cfg.Log.Error("wiping the mounts of the stopped engine's namespace failed", "err", werr)
	}
	cfg.Log.Info("rootless engine stopped: wiped the mounts of its namespace", "engine_pid", pid, "mounts", n)
	return &cli.StatusError{Status: rootless.EngineGoneStatus}
}
