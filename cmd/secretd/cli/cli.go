// Package cli is what every secretd command shares: its streams, the
// global flags and the API client they make.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/docker/go-connections/tlsconfig"

	"github.com/secretd/secretd/api"
	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/internal/rootless"
)

// Version is set at build time with -ldflags.
var Version = "dev"

// Cli is what every command gets: its streams and a client built from the
// global flags on first use.
type Cli struct {
	In       io.Reader
	Out, Err io.Writer

	// Hosts is the global --host: a client uses one, the daemon listens on all.
	Hosts                      []string
	TLSCACert, TLSCert, TLSKey string

	client APIClient
}

// NewCli returns a Cli over the given streams.
func NewCli(in io.Reader, out, errw io.Writer) *Cli {
	return &Cli{In: in, Out: out, Err: errw}
}

// WithClient makes c hand out cl instead of a client built from the global
// flags: tests give commands a fake this way.
func (c *Cli) WithClient(cl APIClient) *Cli {
	c.client = cl
	return c
}

// Client returns the API client for --host / $SECRETD_HOST.
func (c *Cli) Client() (APIClient, error) {
	if c.client != nil {
		return c.client, nil
	}
	// The same host twice is one host: cobra parses the global flags
	// twice when it completes a command line.
	hosts := slices.Compact(slices.Clone(c.Hosts))
	if len(hosts) > 1 {
		return nil, errors.New("a client command takes one --host")
	}
	host := ""
	if len(hosts) == 1 {
		host = hosts[0]
	}
	if host == "" && os.Getenv(client.HostEnv) == "" {
		var err error
		if host, err = checkedDefaultHost(os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR")); err != nil {
			return nil, err
		}
	}
	if (c.TLSCert != "" || c.TLSKey != "") && c.TLSCACert == "" {
		// Without a CA file the daemon's certificate would be checked
		// against the system's CAs: any server one of them vouches for
		// would receive the request, and the secret in it.
		return nil, errors.New("--tlscert and --tlskey need --tlscacert, the CA that signed the daemon's certificate: secretd never trusts the system's CAs for its API")
	}
	var tlsOpts *tlsconfig.Options
	if c.TLSCACert != "" || c.TLSCert != "" || c.TLSKey != "" {
		// With --tlscacert only that CA vouches for the daemon, as the
		// docker CLI does with --tlsverify.
		tlsOpts = &tlsconfig.Options{CAFile: c.TLSCACert, CertFile: c.TLSCert, KeyFile: c.TLSKey, ExclusiveRootPools: true}
	}
	var cl *client.Client
	var err error
	if tlsOpts != nil {
		cfg, terr := tlsconfig.Client(*tlsOpts)
		if terr != nil {
			return nil, terr
		}
		cl, err = client.New(host, cfg)
	} else {
		cl, err = client.New(host, nil)
	}
	if err != nil {
		return nil, err
	}
	c.client = cl
	return cl, nil
}

// defaultHost is the API a command talks to without --host or
// $SECRETD_HOST: for root the system daemon's; for anyone else their own
// rootless daemon's ($XDG_RUNTIME_DIR/secretd/secretd.sock), unless only the
// system daemon's socket exists (a user given access with --group).
func defaultHost(euid int, runtimeDir string) string {
	if euid == 0 || runtimeDir == "" {
		return client.DefaultHost
	}
	own := rootless.SocketPath(runtimeDir)
	if _, err := os.Stat(own); err != nil {
		if _, err := os.Stat(strings.TrimPrefix(client.DefaultHost, "unix://")); err == nil {
			return client.DefaultHost
		}
	}
	return "unix://" + own
}

// checkedDefaultHost is defaultHost, refusing the user's own socket in a
// runtime directory someone else owns or may write to: it could be anyone's
// socket, and the CLI would send it the secrets.
func checkedDefaultHost(euid int, runtimeDir string) (string, error) {
	host := defaultHost(euid, runtimeDir)
	if runtimeDir != "" && host == "unix://"+rootless.SocketPath(runtimeDir) {
		if err := rootless.CheckRuntimeDir(runtimeDir); err != nil {
			return "", err
		}
	}
	return host, nil
}

// StatusError carries an exit status other than 1 out of a command. A nil
// Err exits with Status and prints nothing: what failed (docker, under
// `secretd run`) has said why already.
type StatusError struct {
	Status int
	Err    error
}

func (e *StatusError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Status)
	}
	return e.Err.Error()
}

// Errors is several failures of one command (`rm a b c`), each worded on
// its own line.
type Errors []error

func (e Errors) Error() string {
	lines := make([]string, len(e))
	for i, err := range e {
		lines[i] = FormatError(err)
	}
	return strings.Join(lines, "\n")
}

// FormatError words an error as the docker CLI does, so scripts that grep
// docker's messages work on secretd's too.
func FormatError(err error) string {
	var many Errors
	if errors.As(err, &many) {
		return many.Error()
	}
	var de *client.Error
	if errors.As(err, &de) {
		return fmt.Sprintf("Error response from daemon: %s", de.Message)
	}
	return fmt.Sprintf("Error: %s", err)
}

// PrintRotation tells, on the error stream, what each container a
// rotation did not update in place gets, one line each: neither an error
// nor silence. what names the secret or config, as "secret 'db'".
func (c *Cli) PrintRotation(what string, rot *api.Rotation) {
	if rot == nil {
		return
	}
	for _, ctr := range rot.Containers {
		fmt.Fprintln(c.Err, ctr.Notice(what, rot.Version))
	}
}
