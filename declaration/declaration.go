// Package declaration parses the secrets and configs a container asks for.
// The syntax is that of `docker service create --secret` and `--config`, so
// users can copy a service's flags onto a standalone container: each entry
// is a bare name or source=NAME[,target=PATH][,uid=N][,gid=N][,mode=0NNN]
// (src= for source=, as docker takes it), entries are joined by ";", and a
// source may be pinned to a version with NAME@V.
//
// Secrets and configs are declared apart (the volume options secrets= and
// configs=, the labels secretd.secrets and secretd.configs) with the same
// syntax, and share one volume's files. In the canonical form secretd
// stores, which holds both, a config's entry starts config=NAME instead of
// source=NAME.
package declaration

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
)

const (
	// maxEntries bounds the work one label can cause at container start.
	maxEntries = 256
	// maxTargetLen keeps targets well inside PATH_MAX once joined to the mount point.
	maxTargetLen = 1024
	// maxComponentLen is NAME_MAX on Linux file systems.
	maxComponentLen = 255
	// maxNumber is the largest uid, gid or version accepted, so values fit
	// an int32 everywhere (Linux ids and the on-disk version counter).
	maxNumber = 1<<31 - 1
	// defaultMode matches Swarm's default for secret files.
	defaultMode os.FileMode = 0444
)

// Kind is what an entry names: a secret (the zero Kind) or a config.
type Kind string

const (
	// Secret is a secret's entry.
	Secret Kind = ""
	// Config is a config's entry.
	Config Kind = "config"
)

// Noun is the kind's name in messages: "secret" or "config".
func (k Kind) Noun() string {
	if k == Config {
		return "config"
	}
	return "secret"
}

// Entry is one secret or config a container asks for.
type Entry struct {
	Kind    Kind        // Secret or Config
	Source  string      // secret or config name
	Version int         // 0 = follow the current version; >0 pinned
	Target  string      // relative path inside the mount; defaults to Source
	UID     int         // owner of the file; default 0
	GID     int         // group of the file; default 0
	Mode    os.FileMode // permission bits; default 0444
}

// Parse parses a declaration of secrets (a volume's secrets option, or
// the canonical form, whose config= entries are configs); its errors wrap
// errdefs.ErrInvalid and name the offending entry.
func Parse(s string) ([]Entry, error) { return parse(s, false, Secret) }

// ParseConfigs parses a declaration of configs (a volume's configs option),
// in the same syntax: a bare name or source= names a config.
func ParseConfigs(s string) ([]Entry, error) { return parse(s, false, Config) }

// ParseLabel parses the secretd.secrets label of a container, whose
// entries may also have absolute targets, as `docker service create
// --secret` allows: each entry goes to the container's secretd volume
// that holds its target (a relative one to the volume at /run/secrets).
func ParseLabel(s string) ([]Entry, error) { return parse(s, true, Secret) }

// ParseConfigLabel parses the secretd.configs label, as ParseLabel parses
// secretd.secrets.
func ParseConfigLabel(s string) ([]Entry, error) { return parse(s, true, Config) }

// ParseVolume parses a volume's secrets and configs options (either may be
// empty, not both) into one declaration, whose targets must not collide.
func ParseVolume(secrets, configs string) ([]Entry, error) {
	return parseBoth(secrets, configs, Parse, ParseConfigs)
}

// ParseLabels parses a container's secretd.secrets and secretd.configs
// labels into one declaration, as ParseVolume does for a volume's options.
func ParseLabels(secrets, configs string) ([]Entry, error) {
	return parseBoth(secrets, configs, ParseLabel, ParseConfigLabel)
}

func parseBoth(secrets, configs string, ps, pc func(string) ([]Entry, error)) ([]Entry, error) {
	var out []Entry
	if strings.TrimSpace(secrets) != "" || strings.TrimSpace(configs) == "" {
		es, err := ps(secrets)
		if err != nil {
			return nil, err
		}
		out = es
	}
	if strings.TrimSpace(configs) != "" {
		es, err := pc(configs)
		if err != nil {
			return nil, fmt.Errorf("configs: %w", err)
		}
		out = append(out, es...)
	}
	if err := Check(out); err != nil {
		return nil, err
	}
	return out, nil
}

// Check checks that entries, of both kinds, can share one volume: no two
// have one target, and no target is inside another's file. An absolute
// target is checked as the path it names.
func Check(entries []Entry) error {
	l := layout{files: map[string]int{}, dirs: map[string]int{}}
	for i, e := range entries {
		if err := l.add(i, e.Target); err != nil {
			// The layout's message numbers entries; name them instead.
			reason, _, _ := strings.Cut(err.Error(), " (entries")
			return errdefs.Errorf(errdefs.ErrInvalid, "%s: %s and %s %s", reason, l.clashWith(entries, e.Target), e.Kind.Noun(), quote(e.Source))
		}
	}
	return nil
}

// clashWith names the entry that first took target, or a directory above
// or below it.
func (l *layout) clashWith(entries []Entry, target string) string {
	i, ok := l.files[target]
	if !ok {
		i, ok = l.dirs[target]
	}
	if !ok {
		for p := parent(target); p != ""; p = parent(p) {
			if i, ok = l.files[p]; ok {
				break
			}
		}
	}
	if !ok || i >= len(entries) {
		return "another entry"
	}
	return entries[i].Kind.Noun() + " " + quote(entries[i].Source)
}

func parse(s string, absolute bool, kind Kind) ([]Entry, error) {
	// One trailing ";", as scripts and templates leave when they append
	// "entry;" in a loop, ends the last entry rather than starting an empty
	// one; an empty entry anywhere else stays an error.
	if t := strings.TrimRightFunc(s, unicode.IsSpace); strings.HasSuffix(t, ";") {
		s = t[:len(t)-1]
	}
	if strings.TrimSpace(s) == "" {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "no %ss declared", kind.Noun())
	}
	// Count before splitting so a hostile label cannot make us allocate
	// millions of strings only to refuse them.
	if n := strings.Count(s, ";") + 1; n > maxEntries {
		return nil, errdefs.Errorf(errdefs.ErrInvalid, "too many entries (%d): at most %d allowed", n, maxEntries)
	}
	raw := strings.Split(s, ";")
	entries := make([]Entry, 0, len(raw))
	l := layout{files: map[string]int{}, dirs: map[string]int{}}
	for i, r := range raw {
		text := strings.TrimSpace(r)
		e, err := parseEntry(text, absolute, kind)
		if err == nil {
			err = l.add(i, e.Target)
		}
		if err != nil {
			return nil, errdefs.Errorf(errdefs.ErrInvalid, "entry %d %s: %v", i+1, quote(text), err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// ParseEntry parses one entry of `docker service create --secret`, where,
// as in Swarm, the target may also be an absolute path in the container
// (/etc/nginx/conf.d/site.conf). A volume's declaration never holds one: an
// absolute target is served by a one-file volume of its own (FileVolume).
func ParseEntry(text string) (Entry, error) {
	text = strings.TrimSpace(text)
	e, err := parseEntry(text, true, Secret)
	if err != nil {
		return e, errdefs.Errorf(errdefs.ErrInvalid, "%q: %v", text, err)
	}
	return e, nil
}

// ParseConfigEntry parses one entry of `docker service create --config`.
// As in Swarm, a config's target is a path in the container: the default
// is /NAME, and a relative target is taken from "/".
func ParseConfigEntry(text string) (Entry, error) {
	text = strings.TrimSpace(text)
	e, err := parseEntry(text, true, Config)
	if err != nil {
		return e, errdefs.Errorf(errdefs.ErrInvalid, "%q: %v", text, err)
	}
	if !e.Absolute() {
		e.Target = "/" + e.Target
	}
	return e, nil
}

// Absolute reports whether e's target is an absolute path in the container.
func (e Entry) Absolute() bool { return path.IsAbs(e.Target) }

// OptionFile is the volume option that makes a secretd volume one file:
// its mount point is that file of the tmpfs (a relative target of the
// declaration), which the engine bind-mounts over the container path, so
// the image's other files in that directory stay visible.
const OptionFile = "file"

// OptionScope is the volume option that holds the whole declaration of
// the container the volume belongs to (canonical, targets as declared),
// when its entries are spread over several volumes: the templates of each
// volume read the container's secrets and configs from it, by target.
const OptionScope = "scope"

// FileVolume returns the declaration (for the volume option of e's kind)
// and the OptionFile value of the one-file volume that serves e (with an
// absolute target) when mounted at e.Target: the file is the target's base
// name.
func FileVolume(e Entry) (decl, file string) {
	file = path.Base(e.Target)
	e.Target = file
	return e.Option(), file
}

// Option is e as an entry of the volume option of its kind (secrets= or
// configs=): the canonical form with source= for either kind.
func (e Entry) Option() string {
	e.Kind = Secret
	return e.String()
}

// String returns the canonical form of e, which Parse reads back unchanged
// (a config's entry as config=NAME).
func (e Entry) String() string {
	var b strings.Builder
	if e.Kind == Config {
		b.WriteString("config=")
	} else {
		b.WriteString("source=")
	}
	b.WriteString(e.Source)
	if e.Version > 0 {
		b.WriteString("@")
		b.WriteString(strconv.Itoa(e.Version))
	}
	target := e.Target
	if target == "" {
		target = e.Source
	}
	fmt.Fprintf(&b, ",target=%s,uid=%d,gid=%d,mode=%04o", target, e.UID, e.GID, uint32(e.Mode))
	return b.String()
}

// Format returns the canonical declaration of entries, joined with ";".
func Format(entries []Entry) string {
	parts := make([]string, len(entries))
	for i, e := range entries {
		parts[i] = e.String()
	}
	return strings.Join(parts, ";")
}

func parseEntry(text string, absolute bool, kind Kind) (Entry, error) {
	e := Entry{Kind: kind, Mode: defaultMode}
	if text == "" {
		return e, errors.New("empty entry")
	}
	// Like docker, a lone field without "=" is the secret (or config) name.
	if !strings.ContainsAny(text, ",=") {
		if err := e.setSource(text); err != nil {
			return e, err
		}
		e.Target = e.Source
		return e, nil
	}
	seen := map[string]bool{}
	for _, field := range strings.Split(text, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			return e, errors.New("empty option")
		}
		k, v, ok := strings.Cut(field, "=")
		if !ok {
			return e, fmt.Errorf("option %s is not a key=value pair", quote(field))
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		// Docker lowercases keys, so "Source=x" works there and must here.
		key := strings.ToLower(k)
		if key == "src" {
			// Docker's --secret takes src= for source= (docker/cli opts.SecretOpt).
			key = "source"
		}
		if key == "config" {
			// The canonical form of a config's entry.
			if seen["source"] {
				return e, errors.New("option \"source\" given twice (config= names the source of a config)")
			}
			key, e.Kind = "source", Config
		}
		switch key {
		case "source", "target", "uid", "gid", "mode":
		default:
			return e, fmt.Errorf("unknown option %s", quote(k))
		}
		if seen[key] {
			if spelled := strings.ToLower(k); spelled != key {
				return e, fmt.Errorf("option %q given twice (%s= is %s=)", key, spelled, key)
			}
			return e, fmt.Errorf("option %q given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "source":
			err = e.setSource(v)
		case "target":
			e.Target = v
			if abs, ok := strings.CutPrefix(v, "/"); absolute && ok {
				err = checkAbsolute(v, abs)
			} else {
				err = checkTarget(v)
			}
		case "uid":
			e.UID, err = parseID("uid", v)
		case "gid":
			e.GID, err = parseID("gid", v)
		case "mode":
			e.Mode, err = parseMode(v)
		}
		if err != nil {
			return e, err
		}
	}
	if !seen["source"] {
		return e, errors.New("source is missing")
	}
	if !seen["target"] {
		e.Target = e.Source
	}
	return e, nil
}

func (e *Entry) setSource(v string) error {
	name, ver, pinned := strings.Cut(v, "@")
	if err := store.ValidateName(name); err != nil {
		return fmt.Errorf("source %s: %v", quote(name), err)
	}
	e.Source = name
	if !pinned {
		return nil
	}
	// A leading zero would give two spellings of one version, and "@0"
	// would silently mean "unpinned".
	if !isDigits(ver) || ver[0] == '0' {
		return fmt.Errorf("version %s is not a positive integer", quote(ver))
	}
	n, err := strconv.ParseUint(ver, 10, 64)
	if err != nil || n > maxNumber {
		return fmt.Errorf("version %s is too large", quote(ver))
	}
	e.Version = int(n)
	return nil
}

func parseID(what, v string) (int, error) {
	if !isDigits(v) {
		if len(v) > 1 && v[0] == '-' && isDigits(v[1:]) {
			return 0, fmt.Errorf("%s %s is out of range (0 to %d)", what, quote(v), maxNumber)
		}
		return 0, fmt.Errorf("%s %s is not a number", what, quote(v))
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > maxNumber {
		return 0, fmt.Errorf("%s %s is out of range (0 to %d)", what, quote(v), maxNumber)
	}
	return int(n), nil
}

// parseMode reads the mode as octal even without a leading 0: docker reads
// "400" as decimal, which silently yields 0620 and surprises everyone.
func parseMode(v string) (os.FileMode, error) {
	if v == "" || strings.Trim(v, "01234567") != "" {
		return 0, fmt.Errorf("mode %s is not an octal number", quote(v))
	}
	n, err := strconv.ParseUint(v, 8, 64)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("mode %s is above 0777", quote(v))
	}
	return os.FileMode(n), nil
}

// checkTarget accepts only the one spelling of a path that lands where it
// says inside the mount: the mount is shared by all entries, so a target must
// not escape it nor collide with the "..data"-style names of atomic updates.
// checkAbsolute checks an absolute target t (rel is t without its leading
// slash) as checkTarget checks a relative one.
func checkAbsolute(t, rel string) error {
	if rel == "" {
		return fmt.Errorf("target %q is the root directory: give a file path such as /etc/app/key", t)
	}
	if err := checkTarget(rel); err != nil {
		return fmt.Errorf("target %q: use a clean absolute path without \"..\", such as /etc/nginx/conf.d/site.conf", t)
	}
	return nil
}

func checkTarget(t string) error {
	switch {
	case t == "":
		return errors.New("target must not be empty")
	case !utf8.ValidString(t):
		return fmt.Errorf("target %s is not valid UTF-8", quote(t))
	case strings.IndexFunc(t, unicode.IsControl) >= 0:
		return fmt.Errorf("target %s contains a control character", quote(t))
	case len(t) > maxTargetLen:
		return fmt.Errorf("target is longer than %d bytes", maxTargetLen)
	case strings.HasPrefix(t, "/"):
		return fmt.Errorf("target %s must be a relative path", quote(t))
	case strings.HasSuffix(t, "/"):
		return fmt.Errorf("target %s must not end with \"/\"", quote(t))
	}
	for i, c := range strings.Split(t, "/") {
		switch {
		case c == "":
			return fmt.Errorf("target %s has an empty path component", quote(t))
		case c == "." || c == "..":
			return fmt.Errorf("target %s must not contain %s components", quote(t), quote(c))
		case i == 0 && strings.HasPrefix(c, ".."):
			return fmt.Errorf("target %s must not start with \"..\" (reserved for atomic updates)", quote(t))
		case len(c) > maxComponentLen:
			return fmt.Errorf("target has a path component longer than %d bytes", maxComponentLen)
		}
	}
	// Unreachable with the checks above; it keeps the promise if they change.
	if path.Clean(t) != t {
		return fmt.Errorf("target %s is not a clean path", quote(t))
	}
	return nil
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// layout tracks the files and directories the targets so far create, because
// one path cannot be both a file and a directory in the mount.
type layout struct {
	files map[string]int // target -> index of its entry
	dirs  map[string]int // directory implied by a target -> index of the first such entry
}

func (l *layout) add(i int, t string) error {
	if j, ok := l.files[t]; ok {
		return fmt.Errorf("duplicate target %s (entries %d and %d)", quote(t), j+1, i+1)
	}
	if j, ok := l.dirs[t]; ok {
		return fmt.Errorf("target %s is a directory of another target (entries %d and %d)", quote(t), j+1, i+1)
	}
	for p := parent(t); p != ""; p = parent(p) {
		if j, ok := l.files[p]; ok {
			return fmt.Errorf("target %s is inside target %s, which is a file (entries %d and %d)", quote(t), quote(p), j+1, i+1)
		}
	}
	l.files[t] = i
	for p := parent(t); p != ""; p = parent(p) {
		if _, ok := l.dirs[p]; !ok {
			l.dirs[p] = i
		}
	}
	return nil
}

func parent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// maxQuoted is how much of a piece of declaration text an error quotes: a
// label can be megabytes, and errors reach logs and the audit trail.
const maxQuoted = 128

// quote quotes s for an error, cut to maxQuoted bytes on a rune boundary
// with how much was cut.
func quote(s string) string {
	return strconv.Quote(Clip(s, maxQuoted))
}

// Clip cuts s to at most n bytes on a rune boundary, saying how long it was.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("...(%d bytes)", len(s))
}
