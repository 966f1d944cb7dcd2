package plugin

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

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
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			continue
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
	return Address{Addr: addr, From: path}, nil
}

// readJSONSpec reads a .json spec: {"Name", "Addr", "TLSConfig"}. As in
// dockerd, a TLS setup without a CA file does not verify the server.
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
	if spec.TLSConfig != nil && spec.TLSConfig.CAFile == "" {
		spec.TLSConfig.InsecureSkipVerify = true
	}
	return Address{Addr: spec.Addr, TLSConfig: spec.TLSConfig, From: path}, nil
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
