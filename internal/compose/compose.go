// Package compose translates a compose project's secrets and configs into
// secretd volumes: each service's `secrets:` and `configs:` become named
// volumes of the secretd driver whose `secrets` and `configs` options carry
// the service's declaration, one at /run/secrets and one per file
// elsewhere, so that any compose tool (which knows nothing of secretd)
// runs the project with its secrets and configs served by secretd.
package compose

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/internal/templating"
)

// SecretsDir is where Swarm, and so secretd, puts a service's secrets.
const SecretsDir = "/run/secrets"

// NamespaceLabel is the label `docker stack deploy` puts on what it creates
// for a stack; secretd puts it on the secrets it imports for a project.
const NamespaceLabel = "com.docker.stack.namespace"

// Options say which project to load, as compose's global options do.
type Options struct {
	Files      []string
	Name       string
	WorkingDir string
	EnvFiles   []string
	Profiles   []string
}

// Load reads the project with the compose-spec library: interpolation,
// .env, several files, profiles and extends are the library's.
//
// The library refuses a secret with neither file:, environment: nor
// external: true, which is what a driver secret is (`driver:` and
// `driver_opts:`, as `docker stack deploy` creates them). A project the
// library refuses is loaded again without its consistency checks, and kept
// only if it has driver secrets: Translate then runs those checks on the
// translated file, where the driver secrets are volumes.
func Load(ctx context.Context, o Options) (*types.Project, error) {
	p, err := loadProject(ctx, o, true)
	if err == nil {
		return p, nil
	}
	q, qerr := loadProject(ctx, o, false)
	if qerr != nil || !hasDriverSecrets(q) {
		return nil, err
	}
	return q, nil
}

// hasDriverSecrets reports whether p has a secret that only a driver can
// give a value.
func hasDriverSecrets(p *types.Project) bool {
	for _, s := range p.Secrets {
		if isDriverSecret(s) {
			return true
		}
	}
	return false
}

func isDriverSecret(c types.SecretConfig) bool {
	return c.Driver != "" && !bool(c.External) && c.File == "" && c.Environment == ""
}

func loadProject(ctx context.Context, o Options, consistency bool) (*types.Project, error) {
	fns := []cli.ProjectOptionsFn{
		cli.WithConsistency(consistency),
		cli.WithWorkingDirectory(o.WorkingDir),
		cli.WithOsEnv,
		cli.WithEnvFiles(o.EnvFiles...),
		cli.WithDotEnv,
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithName(o.Name),
		// --profile, else COMPOSE_PROFILES, as compose does.
		cli.WithDefaultProfiles(o.Profiles...),
	}
	po, err := cli.NewProjectOptions(o.Files, fns...)
	if err != nil {
		return nil, err
	}
	return po.LoadProject(ctx)
}

// Secret is one top-level secret (or config: Kind says which) that an
// enabled service uses.
type Secret struct {
	// Kind is declaration.Secret or declaration.Config.
	Kind declaration.Kind
	// Key is the secret's key under the top-level `secrets:`.
	Key string
	// Name is the secretd secret's name: `name:` for an external secret
	// (its key by default), PROJECT_KEY otherwise, as `docker stack
	// deploy` names them.
	Name string
	// External is true when the secret must exist in secretd already.
	External bool
	// File is the absolute path of a `file:` secret.
	File string
	// Env is the variable of an `environment:` secret.
	Env string
	// Labels are the secret's `labels:`.
	Labels map[string]string
	// Driver is the secret driver of a `driver:` secret, created with it
	// and DriverOpts when secretd does not have it yet.
	Driver string
	// DriverOpts are the `driver_opts:` of a driver secret.
	DriverOpts map[string]string
	// Content is a config's `content:` (or its `environment:` variable's
	// value, as the library resolved it).
	Content string
	// HasContent says Content is the data, even when empty.
	HasContent bool
	// Template is the `template_driver:` ("golang"), or empty.
	Template string
}

// Imported reports whether secretd compose creates the secret (from a
// file, a variable or a driver), rather than finding it in secretd.
func (s Secret) Imported() bool { return !s.External }

// Translation is a project whose secrets and configs are secretd volumes.
type Translation struct {
	// Project has no `secrets:` or `configs:` left (top-level or in
	// services) and secretd volumes for each service that had some.
	Project *types.Project
	// Secrets are the top-level secrets the enabled services use, by key.
	Secrets []Secret
	// Configs are the top-level configs the enabled services use, by key.
	Configs []Secret
}

// ConfigsDir is where a config with a relative target goes: "/", as in
// Swarm (a config's default target is /KEY).
const ConfigsDir = "/"

// Translate turns the project's secrets and configs into secretd volumes
// of driver. It changes p. Every error names the service, secret or config
// at fault; nothing outside p is touched.
func Translate(p *types.Project, driver string) (*Translation, error) {
	if driver == "" {
		return nil, errors.New("--driver must not be empty")
	}
	t := &Translation{Project: p}
	drivers := hasDriverSecrets(p)
	used := map[declaration.Kind]map[string]bool{declaration.Secret: {}, declaration.Config: {}}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(p.Services)) {
		svc := p.Services[name]
		if len(svc.Secrets)+len(svc.Configs) == 0 {
			continue
		}
		es, serrs := t.serviceEntries(name, svc, used)
		errs = append(errs, serrs...)
		if len(es.rel)+len(es.files) == 0 {
			continue
		}
		merrs, done := mountService(p, &svc, driver, name, es)
		errs = append(errs, merrs...)
		if !done {
			continue
		}
		svc.Secrets, svc.Configs = nil, nil
		p.Services[name] = svc
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.SortFunc(t.Secrets, func(a, b Secret) int { return strings.Compare(a.Key, b.Key) })
	slices.SortFunc(t.Configs, func(a, b Secret) int { return strings.Compare(a.Key, b.Key) })
	keepBuildSecrets(p)
	p.Configs = nil
	if drivers {
		if err := t.checkConsistency(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// serviceSet is a service's secrets and configs as entries: all with their
// targets as declared (the container's scope for templates), rel those in
// /run/secrets, files those at absolute targets.
type serviceSet struct {
	all, rel, files []declaration.Entry
}

// serviceEntries turns a service's secrets and configs into entries. Each
// one the project uses joins t.Secrets or t.Configs once (used).
func (t *Translation) serviceEntries(name string, svc types.ServiceConfig, used map[declaration.Kind]map[string]bool) (es serviceSet, errs []error) {
	take := func(kind declaration.Kind, key string, ref types.FileReferenceConfig) {
		obj, ok := t.object(kind, key)
		if !ok {
			// The library checks this too; kept so a caller's project
			// cannot reach the volume with one it did not define.
			errs = append(errs, fmt.Errorf("service %q refers to undefined %s %s", name, kind.Noun(), key))
			return
		}
		sec, err := objectOf(kind, key, obj)
		if err != nil {
			errs = append(errs, err)
			return
		}
		e, declared, err := entryOf(kind, sec.Name, ref)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q, %s %q: %w", name, kind.Noun(), key, err))
			return
		}
		if !used[kind][key] {
			used[kind][key] = true
			if kind == declaration.Config {
				t.Configs = append(t.Configs, sec)
			} else {
				t.Secrets = append(t.Secrets, sec)
			}
		}
		es.all = append(es.all, declared)
		if e.Absolute() {
			es.files = append(es.files, e)
		} else {
			es.rel = append(es.rel, e)
		}
	}
	for _, ref := range svc.Secrets {
		take(declaration.Secret, ref.Source, types.FileReferenceConfig(ref))
	}
	for _, ref := range svc.Configs {
		take(declaration.Config, ref.Source, types.FileReferenceConfig(ref))
	}
	return es, errs
}

// mountService gives a service the secretd volumes that serve es: one at
// /run/secrets, and one per file at an absolute target, with the
// service's on-update and, when it is spread over several volumes, its
// scope. It reports false when the service is left as it is.
func mountService(p *types.Project, svc *types.ServiceConfig, driver, name string, es serviceSet) (errs []error, done bool) {
	if err := declaration.Check(es.all); err != nil {
		return []error{fmt.Errorf("service %q: %w", name, err)}, false
	}
	// Templates read the service's secrets and configs by target: a
	// service spread over several volumes gives each the whole list.
	scope := ""
	if len(es.files) > 1 || (len(es.files) == 1 && len(es.rel) > 0) {
		scope = declaration.Format(es.all)
	}
	// What happens after a rotation belongs to the service's volumes, as
	// its secrets do; a label that means nothing fails here, before
	// anything starts.
	onUpdate := ""
	if label, ok := svc.Labels[declaration.LabelOnUpdate]; ok {
		o, err := declaration.ParseOnUpdate(label)
		if err != nil {
			return []error{fmt.Errorf("service %q: %w", name, err)}, false
		}
		onUpdate = o.String()
	}
	with := func(opts map[string]string) map[string]string {
		if onUpdate != "" {
			opts[declaration.OptionOnUpdate] = onUpdate
		}
		return withScope(opts, scope)
	}
	// The paths secretd mounts must be free: compose would refuse two
	// mounts at one path with a message that does not say why.
	taken := map[string]string{}
	for _, v := range svc.Volumes {
		taken[path.Clean(v.Target)] = v.Source
	}
	if len(es.rel) > 0 {
		opts := map[string]string{}
		secrets, configs := splitKinds(es.rel)
		if secrets != "" {
			opts["secrets"] = secrets
		}
		if configs != "" {
			opts["configs"] = configs
		}
		if _, err := declaration.ParseVolume(secrets, configs); err != nil {
			return []error{fmt.Errorf("service %q: %w", name, err)}, false
		}
		if src, ok := taken[SecretsDir]; ok {
			return []error{fmt.Errorf("service %q mounts %s itself (volume %q) and has secrets: secretd mounts its secrets there; remove that mount", name, SecretsDir, src)}, false
		}
		addVolume(p, svc, driver, name, SecretsDir, with(opts))
	}
	for _, e := range es.files {
		if src, ok := taken[e.Target]; ok {
			errs = append(errs, fmt.Errorf("service %q: target %s of %s %s is mounted already (volume %q)", name, e.Target, e.Kind.Noun(), e.Source, src))
			continue
		}
		taken[e.Target] = "secretd"
		decl, file := declaration.FileVolume(e)
		option := "secrets"
		if e.Kind == declaration.Config {
			option = "configs"
		}
		addVolume(p, svc, driver, name, e.Target, with(map[string]string{option: decl, declaration.OptionFile: file}))
	}
	return errs, true
}

// keepBuildSecrets leaves the project only the secrets a build uses: they
// are compose's own (BuildKit's --secret), not secretd's.
func keepBuildSecrets(p *types.Project) {
	kept := types.Secrets{}
	for _, svc := range p.Services {
		if svc.Build == nil {
			continue
		}
		for _, ref := range svc.Build.Secrets {
			if c, ok := p.Secrets[ref.Source]; ok {
				kept[ref.Source] = c
			}
		}
	}
	p.Secrets = nil
	if len(kept) > 0 {
		p.Secrets = kept
	}
}

// object returns the top-level secret or config key, as one shape.
func (t *Translation) object(kind declaration.Kind, key string) (types.FileObjectConfig, bool) {
	if kind == declaration.Config {
		c, ok := t.Project.Configs[key]
		return types.FileObjectConfig(c), ok
	}
	c, ok := t.Project.Secrets[key]
	return types.FileObjectConfig(c), ok
}

// splitKinds returns the volume options of entries: secrets= and configs=.
func splitKinds(entries []declaration.Entry) (secrets, configs string) {
	var s, c []string
	for _, e := range entries {
		if e.Kind == declaration.Config {
			c = append(c, e.Option())
		} else {
			s = append(s, e.Option())
		}
	}
	return strings.Join(s, ";"), strings.Join(c, ";")
}

func withScope(opts map[string]string, scope string) map[string]string {
	if scope != "" {
		opts[declaration.OptionScope] = scope
	}
	return opts
}

// checkConsistency runs the library's consistency checks, which Load
// skipped for a project with driver secrets, on the translated project:
// what compose will be given, with the driver secrets turned into volumes.
func (t *Translation) checkConsistency() error {
	b, err := t.YAML(false)
	if err != nil {
		return err
	}
	p := t.Project
	_, err = loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  p.WorkingDir,
		ConfigFiles: []types.ConfigFile{{Filename: "compose.yaml", Content: b}},
		Environment: p.Environment,
	}, func(o *loader.Options) {
		o.SetProjectName(p.Name, true)
		o.Profiles = []string{"*"} // the translated file holds the enabled services only
		o.SkipResolveEnvironment = true
	})
	return err
}

// addVolume gives svc a secretd volume of driver with opts, mounted at dst.
// Its name covers its options: a volume's options are fixed when it is
// created. The on-update option counts only when set, so the volumes of
// services without the label keep the names earlier versions gave them.
func addVolume(p *types.Project, svc *types.ServiceConfig, driver, service, dst string, opts map[string]string) {
	decl := dst + "\n" + opts["secrets"]
	if opts["configs"] != "" || opts[declaration.OptionScope] != "" {
		// Added only when set, so the volumes of a project without
		// configs or several volumes keep their names.
		decl += "\n" + opts["configs"] + "\n" + opts[declaration.OptionScope]
	}
	if o, ok := opts[declaration.OptionOnUpdate]; ok {
		decl += "\n" + declaration.OptionOnUpdate + "=" + o
	}
	key := volumeKey(service, decl)
	if p.Volumes == nil {
		p.Volumes = types.Volumes{}
	}
	p.Volumes[key] = types.VolumeConfig{Name: p.Name + "_" + key, Driver: driver, DriverOpts: opts}
	svc.Volumes = append(svc.Volumes, types.ServiceVolumeConfig{
		Type:   types.VolumeTypeVolume,
		Source: key,
		Target: dst,
		Volume: &types.ServiceVolumeVolume{NoCopy: true},
	})
}

// Volume is one secretd volume of a translated project.
type Volume struct {
	// Key is the volume's key in the compose file; Name the engine's name.
	Key, Name string
	Driver    string
	// Options are the volume's driver options: secrets, configs, and file,
	// scope and on-update when set.
	Options map[string]string
}

// Volumes lists the secretd volumes of the translated project, by key.
func (t *Translation) Volumes() []Volume {
	var out []Volume
	for _, key := range slices.Sorted(maps.Keys(t.Project.Volumes)) {
		v := t.Project.Volumes[key]
		_, s := v.DriverOpts["secrets"]
		_, c := v.DriverOpts["configs"]
		if (s || c) && strings.HasPrefix(key, "secretd-") {
			out = append(out, Volume{Key: key, Name: v.Name, Driver: v.Driver, Options: maps.Clone(v.DriverOpts)})
		}
	}
	return out
}

// volumeKey names a service's secrets volume after the service and its
// declaration: a declaration is fixed when its volume is created, so a
// changed `secrets:` gets a new volume rather than the old one's files.
func volumeKey(service, decl string) string {
	sum := sha256.Sum256([]byte(decl))
	return "secretd-" + service + "-" + hex.EncodeToString(sum[:4])
}

// objectOf reads a top-level secret or config.
func objectOf(kind declaration.Kind, key string, c types.FileObjectConfig) (Secret, error) {
	s := Secret{Kind: kind, Key: key, Name: c.Name, Labels: c.Labels}
	noun := kind.Noun()
	switch c.TemplateDriver {
	case "":
	case templating.Driver:
		s.Template = c.TemplateDriver
	default:
		return s, fmt.Errorf("%s %q: template_driver %q is not supported: secretd's is %s", noun, key, c.TemplateDriver, templating.Driver)
	}
	switch {
	case kind == declaration.Config && (c.Driver != "" || len(c.DriverOpts) > 0):
		return s, fmt.Errorf("config %q: driver: is not supported for configs: give file:, environment:, content: or external: true", key)
	case c.Driver != "" && !isDriverSecret(types.SecretConfig(c)):
		return s, fmt.Errorf("secret %q: driver: gives the secret's value, so it goes without file:, environment: and external:", key)
	case c.Driver != "" && s.Template != "":
		return s, fmt.Errorf("secret %q: template_driver: makes the data a template, and a driver: secret has no data of its own", key)
	case c.Driver != "":
		s.Driver, s.DriverOpts = c.Driver, maps.Clone(c.DriverOpts)
	case len(c.DriverOpts) > 0:
		return s, fmt.Errorf("secret %q: driver_opts: needs driver:", key)
	case bool(c.External) && s.Template != "":
		return s, fmt.Errorf("%s %q: template_driver: is set when a %s is created: an external one is a template if it was created as one", noun, key, noun)
	case bool(c.External):
		s.External = true
	case c.File != "":
		s.File = c.File
	case c.Environment != "":
		s.Env = c.Environment
		if kind == declaration.Config {
			// The library resolved it into content when it was set.
			s.Content, s.HasContent = c.Content, c.Content != ""
		}
	case kind == declaration.Config && c.Content != "":
		s.Content, s.HasContent = c.Content, true
	default:
		return s, fmt.Errorf("%s %q: give it file:, environment:, %sor external: true", noun, key, map[bool]string{true: "content: ", false: ""}[kind == declaration.Config])
	}
	return s, nil
}

// entryOf turns a service's reference to a secret or config into the
// declaration entry of its volume, and the entry as declared (the target a
// template reads it by). A secret's target under /run/secrets (compose's
// default is /run/secrets/SOURCE) is relative to the secrets volume; a
// config's relative target is taken from / (its default is /SOURCE, as in
// Swarm); any other absolute target gets a one-file volume of its own.
func entryOf(kind declaration.Kind, name string, ref types.FileReferenceConfig) (e, declared declaration.Entry, err error) {
	e = declaration.Entry{Kind: kind, Source: name, Target: ref.Target, Mode: 0o444}
	if e.Target == "" {
		e.Target = ref.Source
	}
	if kind == declaration.Config && !path.IsAbs(e.Target) {
		e.Target = ConfigsDir + e.Target
	}
	if rel, ok := strings.CutPrefix(e.Target, SecretsDir+"/"); ok {
		e.Target = rel
	}
	if e.UID, err = id("uid", ref.UID); err != nil {
		return e, e, err
	}
	if e.GID, err = id("gid", ref.GID); err != nil {
		return e, e, err
	}
	if ref.Mode != nil {
		m := int64(*ref.Mode)
		if m < 0 || m > 0o777 {
			return e, e, fmt.Errorf("mode %#o is not a permission mode: use 0000 to 0777, such as 0400", m)
		}
		e.Mode = os.FileMode(m)
	}
	// Parse the entry as the daemon will, for its checks of the target.
	if _, err := declaration.ParseEntry(e.Option()); err != nil {
		return e, e, err
	}
	declared = e
	if kind == declaration.Config && !path.IsAbs(e.Target) {
		// A config in /run/secrets is read by its path there.
		declared.Target = SecretsDir + "/" + e.Target
	}
	return e, declared, nil
}

func id(what, v string) (int, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 31)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number from 0 to %d", what, v, 1<<31-1)
	}
	return int(n), nil
}

// YAML is the translated project as a compose file that compose v2 and
// docker-compose v1 (1.27 and later) both read. The project's name is left
// out (v1 refuses the key; give it with -p), env_file is left out (the
// library has put its variables in environment already), every '$' in a
// value is doubled (the values are interpolated already, and compose would
// interpolate them again), and for v1 depends_on loses `required`, which
// v1 does not know.
func (t *Translation) YAML(v1 bool) ([]byte, error) {
	p := *t.Project
	p.Name = ""
	p.Services = types.Services{}
	for name, svc := range t.Project.Services {
		svc.EnvFiles = nil
		p.Services[name] = svc
	}
	b, err := p.MarshalYAML()
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	escapeValues(&doc)
	if v1 {
		for _, svc := range mapValues(lookup(&doc, "services")) {
			for _, dep := range mapValues(lookup(svc, "depends_on")) {
				deleteKey(dep, "required")
			}
		}
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return out.Bytes(), enc.Close()
}

// escapeValues doubles '$' in every scalar that is not a mapping key.
func escapeValues(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			escapeValues(c)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			escapeValues(n.Content[i])
		}
	case yaml.ScalarNode:
		n.Value = strings.ReplaceAll(n.Value, "$", "$$")
	}
}

// lookup returns the value under key of the mapping n (or of the document
// n holds), or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// mapValues returns the values of mapping n.
func mapValues(n *yaml.Node) []*yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []*yaml.Node
	for i := 1; i < len(n.Content); i += 2 {
		out = append(out, n.Content[i])
	}
	return out
}

func deleteKey(n *yaml.Node, key string) {
	if n == nil || n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = slices.Delete(n.Content, i, i+2)
			return
		}
	}
}
