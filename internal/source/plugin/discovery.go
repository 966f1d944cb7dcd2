package plugin

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/docker/go-connections/tlsconfig"

	"github.com/secretd/secretd/internal/source"
)

// DefaultSocketsDir is where legacy plugins put their unix sockets.
const DefaultSocketsDir = "/run/docker/plugins"

// DefaultSpecsDirs are where .spec and .json files name a plugin's address,
// in order of priority, as dockerd reads them when not rootless.
var DefaultSpecsDirs = []string{"/etc/docker/plugins", "/usr/lib/docker/plugins"}

// nameRE keeps a plugin name a single path element: dockerd's registry joins
// it to a directory as is.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Address is where a plugin listens, as its socket or spec file says.
type Address struct {
	// Addr is a URL: unix:///path.sock, tcp://host:port, https://...
	Addr string
	// TLSConfig is the TLS setup from a .json spec, if any.
	TLSConfig *tlsconfig.Options
	// From is the file the address was read from (the socket itself or a spec).
	From string
}

// Locate finds plugin name exactly as dockerd's legacy plugin registry does:
// NAME.sock or NAME/NAME.sock in the sockets directory, then NAME.spec,
// NAME/NAME.spec, NAME.json, NAME/NAME.json in each specs directory.
func (r *Registry) Locate(name string) (Address, error) {
	if !nameRE.MatchString(name) || name == "." || name == ".." {
		return Address{}, fmt.Errorf("%w: %q is not a valid plugin name: use letters, digits, '.', '_' and '-'", source.ErrUnknownDriver, name)
	}
	sockets := r.SocketsDir
	if sockets == "" {
		sockets = DefaultSocketsDir
	}
	for _, p := range pluginPaths(sockets, name, ".sock") {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if err := rootOnly(sockets, p, fi); err != nil {
				return Address{}, err
			}
			return Address{Addr: "unix://" + p, From: p}, nil
		}
	}
	specs := r.SpecsDirs
	if specs == nil {
		specs = DefaultSpecsDirs
	}
	var paths []string
	for _, dir := range specs {
		paths = append(paths, pluginPaths(dir, name, ".spec")...)
		paths = append(paths, pluginPaths(dir, name, ".json")...)
	}
	for i, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if err := rootOnly(specs[i/4], p, fi); err != nil {
			return Address{}, err
		}
		if strings.HasSuffix(p, ".json") {
			return readJSONSpec(p)
		}
		return readSpec(p)
	}
	return Address{}, fmt.Errorf("%w: no plugin %q: no socket %s/%s.sock and no %s.spec or %s.json in %s",
		source.ErrUnknownDriver, name, sockets, name, name, name, strings.Join(specs, " or "))
}

func pluginPaths(base, name, ext string) []string {
	return []string{
		filepath.Join(base, name+ext),
		filepath.Join(base, name, name+ext),
	}
}

// rootOnly refuses a plugin socket or spec file, or a directory between
// base and it, that someone other than root (or the daemon's user) owns or
// may write: whoever could replace it would receive every secret asked of
// that plugin, or answer with values of their own. A group may write only
// when it is root's, as go-plugins-helpers makes its sockets (0660 root:root).
func rootOnly(base, path string, fi fs.FileInfo) error {
	check := func(p string, fi fs.FileInfo) error {
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%w: %s: cannot read its owner", source.ErrUnavailable, p)
		}
		if sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
			return fmt.Errorf("%w: %s is owned by uid %d: a secret driver's socket, spec file and their directories must belong to root (chown root %s)", source.ErrUnavailable, p, sys.Uid, p)
		}
		perm := fi.Mode().Perm()
		if perm&0o002 != 0 || (perm&0o020 != 0 && sys.Gid != 0) {
			return fmt.Errorf("%w: %s has mode %04o (group %d): a secret driver's socket, spec file and their directories must be writable by root only (chmod go-w %s)", source.ErrUnavailable, p, perm, sys.Gid, p)
		}
		return nil
	}
	if err := check(path, fi); err != nil {
		return err
	}
	for dir := filepath.Dir(path); ; dir = filepath.Dir(dir) {
		di, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("%w: %w", source.ErrUnavailable, err)
		}
		if err := check(dir, di); err != nil {
			return err
		}
		if dir == filepath.Clean(base) || dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// readSpec reads a .spec file: one URL.
func readSpec(path string) (Address, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Address{}, fmt.Errorf("%w: %w", source.ErrUnavailable, err)
	}
	addr := strings.TrimSpace(string(b))
	if err := checkAddr(addr); err != nil {
		return Address{}, fmt.Errorf("%w: plugin spec %s: %w", source.ErrUnavailable, path, err)
	}
	if strings.HasPrefix(addr, "https://") {
		return Address{}, fmt.Errorf("%w: plugin spec %s: an https address needs a .json spec whose TLSConfig names the CA that signed the plugin's certificate: secretd never checks a plugin against the system's CAs", source.ErrUnavailable, path)
	}
	return Address{Addr: addr, From: path}, nil
}

// readJSONSpec reads a .json spec: {"Name", "Addr", "TLSConfig"}. Unlike
// dockerd, a TLS setup always means TLS (tcp:// too), and only with a CA
// file, which is then the one CA that may vouch for the plugin.
func readJSONSpec(path string) (Address, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Address{}, fmt.Errorf("%w: %w", source.ErrUnavailable, err)
	}
	var spec struct {
		Addr      string
		TLSConfig *tlsconfig.Options
	}
	if err := json.Unmarshal(b, &spec); err != nil {
		return Address{}, fmt.Errorf("%w: plugin spec %s is not valid JSON: %w", source.ErrUnavailable, path, err)
	}
	if err := checkAddr(spec.Addr); err != nil {
		return Address{}, fmt.Errorf("%w: plugin spec %s: %w", source.ErrUnavailable, path, err)
	}
	tc := spec.TLSConfig
	switch {
	case tc == nil && strings.HasPrefix(spec.Addr, "https://"):
		return Address{}, fmt.Errorf("%w: plugin spec %s: an https address needs a TLSConfig naming the CA that signed the plugin's certificate (CAFile): secretd never checks a plugin against the system's CAs", source.ErrUnavailable, path)
	case tc == nil:
	case strings.HasPrefix(spec.Addr, "unix://"):
		return Address{}, fmt.Errorf("%w: plugin spec %s: TLS over a unix socket is not supported: drop TLSConfig, or give a tcp:// address", source.ErrUnavailable, path)
	case tc.InsecureSkipVerify:
		return Address{}, fmt.Errorf("%w: plugin spec %s: InsecureSkipVerify would send secrets to any server: remove it and name the plugin's CA in CAFile", source.ErrUnavailable, path)
	case tc.CAFile == "":
		return Address{}, fmt.Errorf("%w: plugin spec %s: its TLSConfig names no CAFile: name the CA that signed the plugin's certificate (secretd never turns verification off nor uses the system's CAs)", source.ErrUnavailable, path)
	default:
		tc.ExclusiveRootPools = true
	}
	return Address{Addr: spec.Addr, TLSConfig: tc, From: path}, nil
}

func checkAddr(addr string) error {
	u, err := url.Parse(addr)
	if err != nil {
		return fmt.Errorf("address %q is not a URL", addr)
	}
	switch u.Scheme {
	case "unix", "tcp", "http", "https":
		return nil
	case "":
		return fmt.Errorf("address %q has no protocol: write unix:///path.sock or tcp://host:port", addr)
	default:
		return fmt.Errorf("address %q: unsupported protocol %q", addr, u.Scheme)
	}
}
