package shell

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultConfigPath is where the daemon reads the host-wide shell-driver
// configuration.
const DefaultConfigPath = "/etc/secretd/shell-driver.conf"

// DefaultTimeout is how long a command may run when neither the
// configuration nor the secret says otherwise.
const DefaultTimeout = 10 * time.Second

// MaxTimeout bounds the timeout a configuration or a secret may ask for: a
// Mount waits for the lookup, and dockerd waits for the Mount.
const MaxTimeout = 5 * time.Minute

// Config is the host-wide configuration: Podman's shell-driver contract (its
// four commands) plus the environment and limits the commands run with.
// Per-secret driver options override the commands and the timeout.
type Config struct {
	// Lookup prints the value of the secret SECRET_ID on stdout.
	Lookup string
	// List prints the IDs of the secrets the backend holds, one a line.
	List string
	// Store reads a value on stdin and keeps it as SECRET_ID.
	Store string
	// Delete removes the secret SECRET_ID.
	Delete string
	// Timeout bounds each command; zero means DefaultTimeout.
	Timeout time.Duration
	// Env adds variables to the commands' environment: "NAME=VALUE" sets
	// one, a bare "NAME" passes the daemon's own value through.
	Env []string
	// DenySecretCommands, when true, refuses commands in per-secret
	// options: only this configuration's commands run.
	DenySecretCommands bool
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// LoadConfig reads the configuration file at path. A missing file is an
// empty configuration: secrets then give their own lookup command. Its
// commands run as root for every API user, so the file and its directory
// must be root's (or the daemon user's) and writable by nobody else.
func LoadConfig(path string) (Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("shell driver configuration: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Config{}, fmt.Errorf("shell driver configuration: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Config{}, fmt.Errorf("shell driver configuration %s is not a regular file", path)
	}
	if err := rootOnly("shell driver configuration", path, st); err != nil {
		return Config{}, err
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return Config{}, fmt.Errorf("shell driver configuration: %w", err)
	}
	if dst, err := os.Stat(filepath.Dir(real)); err != nil {
		return Config{}, fmt.Errorf("shell driver configuration: %w", err)
	} else if err := rootOnly("the directory of the shell driver configuration", filepath.Dir(real), dst); err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(f)
	if err != nil {
		return Config{}, fmt.Errorf("shell driver configuration %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig reads a configuration: one "key = value" a line, "#" starts a
// comment line, blank lines are ignored. Keys: lookup, list, store, delete,
// timeout (a Go duration), env (repeatable), secret-commands (allow|deny).
func ParseConfig(r io.Reader) (Config, error) {
	var cfg Config
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		if !ok {
			return Config{}, fmt.Errorf("line %d: want key = value", line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key != "env" {
			if seen[key] {
				return Config{}, fmt.Errorf("line %d: %s is set twice", line, key)
			}
			seen[key] = true
		}
		switch key {
		case OptLookup:
			cfg.Lookup = value
		case OptList:
			cfg.List = value
		case OptStore:
			cfg.Store = value
		case OptDelete:
			cfg.Delete = value
		case OptTimeout:
			d, err := parseTimeout(value)
			if err != nil {
				return Config{}, fmt.Errorf("line %d: %w", line, err)
			}
			cfg.Timeout = d
		case "env":
			name, _, _ := strings.Cut(value, "=")
			if !envNameRE.MatchString(name) {
				return Config{}, fmt.Errorf("line %d: env wants NAME or NAME=VALUE, with NAME made of letters, digits and _", line)
			}
			cfg.Env = append(cfg.Env, value)
		case "secret-commands":
			switch value {
			case "allow":
				cfg.DenySecretCommands = false
			case "deny":
				cfg.DenySecretCommands = true
			default:
				return Config{}, fmt.Errorf("line %d: secret-commands is allow or deny, not %q", line, value)
			}
		default:
			return Config{}, fmt.Errorf("line %d: unknown key %q (known: lookup, list, store, delete, timeout, env, secret-commands)", line, key)
		}
	}
	if err := sc.Err(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// rootOnly refuses a file or directory that someone other than root (or
// the daemon's own user) owns or may write: whoever can change the
// configuration chooses the commands root runs.
func rootOnly(what, path string, st fs.FileInfo) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s %s: cannot read its owner", what, path)
	}
	if sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s %s is owned by uid %d: its commands run as root, so it must belong to root (chown root %s)", what, path, sys.Uid, path)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("%s %s has mode %04o: its commands run as root, so only root may write it (chmod go-w %s)", what, path, perm, path)
	}
	return nil
}

func parseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		// A bare number is seconds, as Podman's and systemd's users expect.
		n, nerr := strconv.Atoi(s)
		if nerr != nil {
			return 0, fmt.Errorf("timeout %q is not a duration: write it as 10s or 2m", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > MaxTimeout {
		return 0, fmt.Errorf("timeout %q is out of range: give more than 0s and at most %s", s, MaxTimeout)
	}
	return d, nil
}
