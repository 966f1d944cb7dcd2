// Package compose holds `secretd compose`: the user's compose file run by
// compose, with its secrets served by secretd.
package compose

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/compose"
)

// options are secretd compose's own flags and the compose options it reads
// the project with.
type options struct {
	driver     string
	files      []string
	name       string
	projectDir string
	envFiles   []string
	profiles   []string
}

// NewComposeCommand returns `secretd compose`.
func NewComposeCommand(c *cli.Cli) *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "compose [OPTIONS] COMMAND [ARGS...]",
		Short: "Run compose on a compose or stack file, with its secrets served by secretd",
		Long: `Read the compose file with the compose-spec library, turn its secrets into
secretd volumes, and run compose ('docker compose' if present, else
docker-compose) on the result. Every other compose feature passes through;
the exit status is compose's.

- external: true (with name:) is a secret that must exist in secretd.
- file: and environment: secrets are imported at up, create, run, start and
  restart as PROJECT_KEY (the name 'docker stack deploy' gives them); when
  the source changed they get a new version, which running containers see.
  'down --remove-secrets' removes them; 'down' alone never does.
- Each service's secrets (short or long syntax: source, target, uid, gid,
  mode) appear at /run/secrets on a read-only tmpfs, as in Swarm. An
  absolute target elsewhere (/etc/nginx/conf.d/site.conf) is one file
  bind-mounted there, beside the image's files; a rotation reaches it when
  the container next starts.

'secretd compose config' prints the translated compose file.`,
		Example: `  secretd compose up -d
  secretd compose -f stack.yml -p todobackend up -d
  secretd compose config
  secretd compose down -v --remove-secrets`,
		Args:                  cobra.ArbitraryArgs,
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &cli.StatusError{Status: 125, Err: fmt.Errorf("secretd compose needs a COMMAND, such as up, down or config\nSee '%s --help'", cmd.CommandPath())}
			}
			return o.run(cmd.Context(), c, args[0], args[1:])
		},
	}
	f := cmd.Flags()
	// Compose's own commands and their flags follow COMMAND: stop there.
	f.SetInterspersed(false)
	f.StringVar(&o.driver, "driver", "", "volume driver name of the secretd daemon, checked with it (default: the one it serves, its --driver-name; \"secretd\" for config)")
	f.StringArrayVarP(&o.files, "file", "f", nil, "compose configuration files, repeatable (default compose.yaml, docker-compose.yml, ...)")
	f.StringVarP(&o.name, "project-name", "p", "", "project name")
	f.StringVar(&o.projectDir, "project-directory", "", "working directory (default: the directory of the first compose file)")
	f.StringArrayVar(&o.envFiles, "env-file", nil, "environment files, repeatable (default .env in the project directory)")
	f.StringArrayVar(&o.profiles, "profile", nil, "profiles to enable, repeatable")
	return cmd
}

// startsContainers are the compose commands that may start a container:
// its secrets must be in secretd before they run.
var startsContainers = []string{"up", "create", "run", "start", "restart"}

// stopsContainers are the compose commands that may stop a container,
// which has dockerd call the volume driver to wipe its secrets.
var stopsContainers = []string{"down", "stop", "kill", "rm"}

// volumeDriver checks the daemon before compose runs a command that
// starts containers, and returns the volume driver to translate with: the
// one the daemon serves, or --driver once the daemon confirms it. A
// command that stops containers runs without the daemon, with a warning of
// what that costs. Other commands (config, ps, logs) need no daemon.
func (o options) volumeDriver(ctx context.Context, c *cli.Cli, command string) (string, error) {
	fallback := cmp.Or(o.driver, cli.DefaultVolumeDriver)
	switch {
	case slices.Contains(startsContainers, command):
		return c.VolumeDriver(ctx, o.driver)
	case slices.Contains(stopsContainers, command):
		d, err := c.VolumeDriver(ctx, o.driver)
		switch {
		case err == nil:
			return d, nil
		case errors.Is(err, errdefs.ErrLocked):
			// Stopping needs no key: the wipe works while locked.
		default:
			fmt.Fprintf(c.Err, "WARNING: %v\nWARNING: without secretd, dockerd waits about 15 s on its volume driver for each container it stops, "+
				"and their secrets stay in memory on this host until secretd runs again and wipes them: start secretd first\n", err)
		}
	}
	return fallback, nil
}

func (o options) run(ctx context.Context, c *cli.Cli, command string, args []string) error {
	if ctx == nil {
		ctx = context.Background()
	}
	removeSecrets := false
	if command == "down" {
		if i := slices.Index(args, "--remove-secrets"); i >= 0 {
			removeSecrets = true
			args = slices.Delete(slices.Clone(args), i, i+1)
		}
	}
	quietVersionAdvice()
	project, err := compose.Load(ctx, compose.Options{
		Files: o.files, Name: o.name, WorkingDir: o.projectDir, EnvFiles: o.envFiles, Profiles: o.profiles,
	})
	if err != nil {
		return o.noFileHint(err)
	}
	driver, err := o.volumeDriver(ctx, c, command)
	if err != nil {
		return err
	}
	t, err := compose.Translate(project, driver)
	if err != nil {
		return err
	}
	tool, err := findCompose()
	if err != nil && !(command == "config" && len(args) == 0) {
		return &cli.StatusError{Status: 127, Err: err}
	}
	file, err := t.YAML(tool.v1)
	if err != nil {
		return err
	}
	if command == "config" && len(args) == 0 {
		_, err := c.Out.Write(file)
		return err
	}
	if slices.Contains(startsContainers, command) {
		if err := o.provide(ctx, c, t); err != nil {
			return err
		}
		if err := createVolumes(c, t); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp("", "secretd-compose-*.yml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(file); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	full := append(slices.Clone(tool.args), "--project-name", project.Name, "--project-directory", project.WorkingDir, "--file", tmp.Name())
	for _, p := range o.profiles {
		full = append(full, "--profile", p)
	}
	full = append(full, command)
	full = append(full, args...)
	code, err := execCompose(c, tool.bin, full)
	if err != nil {
		return err
	}
	if code != 0 {
		return &cli.StatusError{Status: code}
	}
	if removeSecrets {
		return removeImported(ctx, c, t, project.Name)
	}
	return nil
}

// composeTool is the compose found on $PATH.
type composeTool struct {
	bin  string
	args []string
	// v1 is docker-compose 1.x, which reads an older dialect.
	v1 bool
}

// findCompose prefers compose v2 (`docker compose`), as the compose spec
// does, and falls back to docker-compose v1.
var findCompose = func() (composeTool, error) {
	if docker, err := exec.LookPath("docker"); err == nil {
		if exec.Command(docker, "compose", "version").Run() == nil {
			return composeTool{bin: docker, args: []string{"compose"}}, nil
		}
	}
	if dc, err := exec.LookPath("docker-compose"); err == nil {
		out, err := exec.Command(dc, "version", "--short").Output()
		v1 := err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), "1.")
		return composeTool{bin: dc, v1: v1}, nil
	}
	return composeTool{v1: true}, errors.New("secretd compose needs compose: neither 'docker compose' nor docker-compose was found on $PATH")
}

// execCompose runs compose in the foreground and returns its exit status;
// a variable so tests can see what would run.
var execCompose = func(c *cli.Cli, bin string, args []string) (int, error) {
	return c.RunForeground("compose", bin, args)
}

// createVolumes creates the project's secretd volumes as compose would
// (same name, driver, options and labels) before compose looks them up.
// For a name it does not know, the engine asks every volume driver it has
// ever seen, waiting out each one whose plugin is gone; a known name is
// answered at once. Creating an existing volume is a no-op.
func createVolumes(c *cli.Cli, t *compose.Translation) error {
	docker, err := exec.LookPath("docker")
	if err != nil {
		return nil // compose creates them, only more slowly
	}
	for _, v := range t.Volumes() {
		args := []string{"volume", "create", "--driver", v.Driver}
		for _, k := range slices.Sorted(maps.Keys(v.Options)) {
			args = append(args, "--opt", k+"="+v.Options[k])
		}
		args = append(args, "--label", "com.docker.compose.project="+t.Project.Name, "--label", "com.docker.compose.volume="+v.Key, v.Name)
		cmd := exec.Command(docker, args...)
		cmd.Stderr = c.Err
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("create volume %s with driver %s: %w", v.Name, v.Driver, err)
		}
	}
	return nil
}
