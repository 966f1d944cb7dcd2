package container

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os/exec"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/secretd/secretd/cmd/secretd/cli"
	"github.com/secretd/secretd/declaration"
)

// runOptions are `secretd run`'s own flags; everything after them belongs
// to `docker run`.
type runOptions struct {
	secrets    []string
	configs    []string
	driver     string
	dockerHost string
	targetDir  string
}

// runLong is `secretd run --help`'s description.
const runLong = `Run a container through the docker CLI with a secretd volume at
--secret-target-dir whose options hold the --secret entries: the container
starts only once its secrets are mounted, and they are wiped when it stops.

secretd's own options come first; the first argument that is not one of
them, or everything after '--', is passed to 'docker run' unchanged, so
every docker run option works. The exit status is docker's. The --secret
entries are checked before anything starts, and so is the daemon: it must
answer, be unlocked and serve the volume driver given (by default the one
it serves), or nothing is started.

As in Swarm, a target may be an absolute path, such as
target=/etc/nginx/conf.d/site.conf: that secret gets a volume of its own,
one file bind-mounted at that path, and the image's other files in that
directory stay visible. A bind mount holds the file it was given: a
rotation reaches such a file when the container next starts (the label
secretd.on-update=restart does that), while /run/secrets sees it at once.

--config gives the container a config, with the same syntax; as in Swarm
its default target is /NAME, and a relative target is taken from /. A
config at a path under --secret-target-dir joins the secrets there.
Templates (--template-driver golang) read the secrets and configs this
container declares, by target.

A secretd.on-update label among the docker run options (--label, -l) is
checked before docker runs, and given to the volumes as their on-update
option: what happens to the container after a rotation belongs to its
volumes, as its secrets do.

Requires the docker CLI on $PATH. ` + "`DOCKER_HOST`" + ` and the other ` + "`DOCKER_*`" + `
variables are honoured as docker honours them.`

// NewRunCommand returns `secretd run`.
func NewRunCommand(c *cli.Cli) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [OPTIONS] [--] [DOCKER RUN OPTIONS] IMAGE [COMMAND] [ARG...]",
		Short: "Run a container with secrets, as 'docker service create --secret' does for a service",
		Long:  runLong,
		Example: `  secretd run --secret db_password -- --rm alpine cat /run/secrets/db_password
  secretd run --secret db_password --secret source=tls,target=certs/site.key,mode=0400 -d --name web nginx
  secretd run --secret site.key --config src=site.conf,target=/etc/nginx/conf.d/site.conf -d nginx
  secretd run --secret-target-dir /etc/app/secrets --secret api_key -- -it --rm myapp`,
		// docker run's flags are not secretd's: parse ours by hand and pass
		// the rest through untouched.
		DisableFlagParsing:    true,
		DisableFlagsInUseLine: true,
		ValidArgsFunction:     runCompletion(c),
		RunE: func(cmd *cobra.Command, args []string) error {
			ours, rest, help := splitRunArgs(cmd, args)
			if help {
				return cmd.Help()
			}
			if err := cmd.Flags().Parse(ours); err != nil {
				return &cli.StatusError{Status: 125, Err: fmt.Errorf("%w\nSee '%s --help'", err, cmd.CommandPath())}
			}
			if cmd.Flags().Changed("driver") && o.driver == "" {
				return &cli.StatusError{Status: 125, Err: errors.New("--driver must not be empty: leave it out to use the daemon's")}
			}
			// What the user typed is checked first; then the daemon, which
			// names the driver, before docker waits on a plugin that is
			// not there.
			if _, err := o.dockerArgs(rest); err != nil {
				return &cli.StatusError{Status: 125, Err: flagOrderHint(cmd, ours, rest, err)}
			}
			driver, err := c.VolumeDriver(cmd.Context(), o.driver)
			if err != nil {
				return &cli.StatusError{Status: 125, Err: err}
			}
			o.driver = driver
			dockerArgs, err := o.dockerArgs(rest)
			if err != nil {
				return &cli.StatusError{Status: 125, Err: err}
			}
			return runDocker(c, dockerArgs)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.secrets, "secret", nil, "give the container a secret (`SPEC`: NAME or source=NAME[@VERSION],target=PATH,uid=N,gid=N,mode=0NNN), repeatable")
	f.StringArrayVar(&o.configs, "config", nil, "give the container a config (`SPEC`, as --secret; default target /NAME), repeatable")
	f.StringVar(&o.driver, "driver", "", "volume driver name of the secretd daemon, checked with it (default: the one it serves, its --driver-name)")
	f.StringVar(&o.dockerHost, "docker-host", "", "Docker Engine to run the container on (default $DOCKER_HOST or the docker CLI's default)")
	f.StringVar(&o.targetDir, "secret-target-dir", "/run/secrets", "where the secrets appear in the container")
	return cmd
}

// splitRunArgs separates secretd's leading flags from docker run's
// arguments: scanning stops at "--" or at the first argument that is not
// one of secretd run's flags. help reports -h or --help among ours.
func splitRunArgs(cmd *cobra.Command, args []string) (ours, rest []string, help bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return ours, args[i+1:], help
		}
		if a == "-h" || a == "--help" {
			help = true
			continue
		}
		if !strings.HasPrefix(a, "--") {
			return ours, args[i:], help
		}
		name, _, hasValue := strings.Cut(a[2:], "=")
		if cmd.LocalFlags().Lookup(name) == nil {
			return ours, args[i:], help
		}
		ours = append(ours, a)
		if !hasValue && i+1 < len(args) {
			i++
			ours = append(ours, args[i])
		}
	}
	return ours, nil, help
}

// dockerArgs builds the docker command line: the engine, then `run` with
// the secretd volumes ahead of the user's arguments. The declaration goes in
// the volumes' options rather than the secretd.secrets label: the daemon
// then mounts without asking the engine which container is starting, the
// slowest part of a Mount on a busy engine.
//
// Entries under --secret-target-dir share one volume there (options
// secrets= and configs=); every other absolute target gets a one-file
// volume of its own, mounted at it. When there are several volumes, each
// also gets the container's whole declaration (option scope=), which its
// templates read from by target.
func (o runOptions) dockerArgs(user []string) ([]string, error) {
	if len(o.secrets)+len(o.configs) == 0 {
		return nil, errNoSecret
	}
	if !path.IsAbs(o.targetDir) || path.Clean(o.targetDir) != o.targetDir || o.targetDir == "/" {
		return nil, fmt.Errorf("--secret-target-dir %q: use an absolute, clean path other than /, such as /run/secrets", o.targetDir)
	}
	es, err := o.entries()
	if err != nil {
		return nil, err
	}
	if len(user) == 0 {
		return nil, errors.New("secretd run needs an image: secretd run [OPTIONS] [--] [DOCKER RUN OPTIONS] IMAGE [COMMAND] [ARG...]")
	}
	opts, err := es.volumeOpts(user)
	if err != nil {
		return nil, err
	}
	mounts, err := o.mounts(es, opts)
	if err != nil {
		return nil, err
	}
	var args []string
	if o.dockerHost != "" {
		args = append(args, "--host", o.dockerHost)
	}
	args = append(args, "run")
	for _, m := range mounts {
		args = append(args, "--mount", m)
	}
	return append(args, user...), nil
}

// runEntries are the --secret and --config entries of a run: those in the
// target directory as written (relSecrets, relConfigs), the files at other
// absolute targets, and all of them.
type runEntries struct {
	relSecrets, relConfigs []string
	files, all             []declaration.Entry
}

// entries reads the --secret and --config flags. Each is one entry, as
// with docker service create; a ';' would smuggle in more.
func (o runOptions) entries() (es runEntries, err error) {
	add := func(flag, spec string, parse func(string) (declaration.Entry, error)) error {
		if strings.Contains(spec, ";") {
			return fmt.Errorf("--%s %q: one %s per --%s (repeat the flag instead of using ';')", flag, spec, flag, flag)
		}
		e, err := parse(spec)
		if err != nil {
			return fmt.Errorf("--%s %w", flag, err)
		}
		es.all = append(es.all, e)
		rel := &es.relSecrets
		if e.Kind == declaration.Config {
			rel = &es.relConfigs
		}
		if !e.Absolute() {
			*rel = append(*rel, spec)
			return nil
		}
		if inside, ok := strings.CutPrefix(e.Target, o.targetDir+"/"); ok {
			e.Target = inside
			*rel = append(*rel, e.Option())
			return nil
		}
		es.files = append(es.files, e)
		return nil
	}
	for _, spec := range o.secrets {
		if err := add("secret", spec, declaration.ParseEntry); err != nil {
			return runEntries{}, err
		}
	}
	for _, spec := range o.configs {
		if err := add("config", spec, declaration.ParseConfigEntry); err != nil {
			return runEntries{}, err
		}
	}
	return es, nil
}

// volumeOpts are the options every volume of the run gets: the scope of
// templates, and the on-update of the container (user are its docker run
// arguments).
func (es runEntries) volumeOpts(user []string) ([]string, error) {
	var opts []string
	if n := len(es.files); n > 1 || (n == 1 && len(es.relSecrets)+len(es.relConfigs) > 0) {
		opts = []string{"volume-opt=" + declaration.OptionScope + "=" + declaration.Format(es.all)}
	}
	// The volumes carry the container's on-update, so that no Mount has
	// to ask the engine for its label; a label file leaves it to the
	// daemon, which learns it from the container before the Mount ends.
	if label, known := onUpdateOf(user); known {
		o, err := declaration.ParseOnUpdate(label)
		if err != nil {
			return nil, err
		}
		opts = append(opts, "volume-opt="+declaration.OptionOnUpdate+"="+o.String())
	}
	return opts, nil
}

// mounts are the --mount values of the run's volumes: one at the target
// directory, and one per file elsewhere, each with opts.
func (o runOptions) mounts(es runEntries, opts []string) ([]string, error) {
	var mounts []string
	if len(es.relSecrets)+len(es.relConfigs) > 0 {
		// The volume keeps the entries as written; the set is parsed as the
		// daemon will parse it, because two entries may claim one target.
		decl, cfgs := strings.Join(es.relSecrets, ";"), strings.Join(es.relConfigs, ";")
		if _, err := declaration.ParseVolume(decl, cfgs); err != nil {
			return nil, fmt.Errorf("--secret: %w", err)
		}
		fields := []string{"type=volume", "volume-driver=" + o.driver, "dst=" + o.targetDir, "volume-nocopy"}
		if decl != "" {
			fields = append(fields, "volume-opt=secrets="+decl)
		}
		if cfgs != "" {
			fields = append(fields, "volume-opt=configs="+cfgs)
		}
		m, err := csvField(append(fields, opts...)...)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	seen := map[string]declaration.Kind{}
	for _, e := range es.files {
		if k, ok := seen[e.Target]; ok && k == e.Kind {
			return nil, fmt.Errorf("--%s: two %ss have target %s", e.Kind.Noun(), e.Kind.Noun(), e.Target)
		} else if ok {
			return nil, fmt.Errorf("--%s: a secret and a config both have target %s", e.Kind.Noun(), e.Target)
		}
		seen[e.Target] = e.Kind
		decl, file := declaration.FileVolume(e)
		option, secrets, configs := "secrets", decl, ""
		if e.Kind == declaration.Config {
			option, secrets, configs = "configs", "", decl
		}
		if _, err := declaration.ParseVolume(secrets, configs); err != nil {
			return nil, fmt.Errorf("--%s: %w", e.Kind.Noun(), err)
		}
		m, err := csvField(append([]string{"type=volume", "volume-driver=" + o.driver, "dst=" + e.Target, "volume-nocopy",
			"volume-opt=" + option + "=" + decl, "volume-opt=" + declaration.OptionFile + "=" + file}, opts...)...)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	return mounts, nil
}

// runShortBools are docker run's one-letter flags that take no value:
// in a group (-dit) the letters after them are flags too.
const runShortBools = "dtiPq"

// onUpdateOf returns the secretd.on-update label that docker run's
// arguments give the container, as docker reads them: --label, -l, with
// the value joined (--label=, -lVALUE, -l=VALUE) or next, -l at the end
// of a group of one-letter flags; the last one wins. A --label-file is
// read before the --label flags: with one and no such flag, the label is
// not known here. No label at all is none.
func onUpdateOf(args []string) (label string, known bool) {
	const key = declaration.LabelOnUpdate
	found, files := false, false
	take := func(v string) {
		if k, val, _ := strings.Cut(v, "="); k == key {
			label, found = val, true
		}
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "--label":
			take(next())
		case strings.HasPrefix(a, "--label="):
			take(strings.TrimPrefix(a, "--label="))
		case a == "--label-file" || strings.HasPrefix(a, "--label-file="):
			files = true
		case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && len(a) > 1:
			for j := 1; j < len(a); j++ {
				if strings.IndexByte(runShortBools, a[j]) >= 0 {
					continue
				}
				// This letter takes a value: the rest of the group, or
				// the next argument.
				v := strings.TrimPrefix(a[j+1:], "=")
				if j+1 == len(a) {
					v = next()
				}
				if a[j] == 'l' {
					take(v)
				}
				break
			}
		}
	}
	return label, found || !files
}

// csvField joins fields the way docker's --mount reads them, quoting any
// that hold a comma or a quote.
func csvField(fields ...string) (string, error) {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	if err := w.Write(fields); err != nil {
		return "", err
	}
	w.Flush()
	return strings.TrimSuffix(b.String(), "\n"), w.Error()
}

// execDocker starts the docker CLI; a variable so tests can see what would
// run without running it.
var execDocker = func(c *cli.Cli, args []string) (int, error) {
	bin, err := exec.LookPath("docker")
	if err != nil {
		return 0, &cli.StatusError{Status: 127, Err: fmt.Errorf("secretd run needs the docker CLI on $PATH: %w", err)}
	}
	return c.RunForeground("docker", bin, args)
}

// runDocker runs docker and hands its exit status back without a message
// of secretd's own: docker has said what went wrong.
func runDocker(c *cli.Cli, args []string) error {
	code, err := execDocker(c, args)
	if err != nil {
		return err
	}
	if code != 0 {
		return &cli.StatusError{Status: code}
	}
	return nil
}
