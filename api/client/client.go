// Package client is the Go client of secretd's API, used by the secretd CLI
// and importable by tests and other programs.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/docker/go-connections/sockets"

	"github.com/secretd/secretd/api"
)

// DefaultHost is where the daemon listens unless told otherwise.
const DefaultHost = "unix:///run/secretd/secretd.sock"

// HostEnv names the environment variable that overrides DefaultHost.
const HostEnv = "SECRETD_HOST"

// Client talks to one secretd daemon.
type Client struct {
	host string
	base string
	http *http.Client
}

// Error is an error answered by the daemon, with its HTTP status.
type Error struct {
	StatusCode int
	Message    string
}

func (e *Error) Error() string { return e.Message }

// IsNotFound reports whether err is the daemon's 404.
func IsNotFound(err error) bool { return statusIs(err, http.StatusNotFound) }

// IsConflict reports whether err is the daemon's 409 (exists, in use).
func IsConflict(err error) bool { return statusIs(err, http.StatusConflict) }

// IsLocked reports whether err says the store is locked.
func IsLocked(err error) bool { return statusIs(err, http.StatusServiceUnavailable) }

func statusIs(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == code
}

// New returns a client for host ("unix:///path" or "tcp://addr"); an empty
// host means $SECRETD_HOST, else DefaultHost. tlsConfig is required for
// tcp, with RootCAs: the daemon is never checked against the system's CAs.
func New(host string, tlsConfig *tls.Config) (*Client, error) {
	if host == "" {
		host = os.Getenv(HostEnv)
	}
	if host == "" {
		host = DefaultHost
	}
	proto, addr, ok := strings.Cut(host, "://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("invalid host %q: use unix:///path/to/socket or tcp://host:port", host)
	}
	tr := &http.Transport{}
	base := "http://secretd"
	switch proto {
	case "unix":
	case "tcp":
		if tlsConfig == nil {
			return nil, fmt.Errorf("host %s: tcp needs TLS: pass --tlscacert, --tlscert and --tlskey", host)
		}
		if tlsConfig.RootCAs == nil {
			// A nil pool means the system's CAs: any server one of them
			// vouches for would receive the requests and their secrets.
			return nil, fmt.Errorf("host %s: the TLS configuration names no CA to check the daemon with: pass --tlscacert (set RootCAs)", host)
		}
		tr.TLSClientConfig = tlsConfig
		base = "https://" + addr
	default:
		return nil, fmt.Errorf("invalid host %q: unsupported protocol %q (use unix or tcp)", host, proto)
	}
	if err := sockets.ConfigureTransport(tr, proto, addr); err != nil {
		return nil, fmt.Errorf("host %s: %w", host, err)
	}
	return &Client{host: host, base: base, http: &http.Client{Transport: tr}}, nil
}

// Host is the daemon address this client talks to.
func (c *Client) Host() string { return c.host }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
		// The request body may hold secret data: drop our copy once sent.
		defer clear(b)
	}
	u := c.base + "/v" + api.APIVersion + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return connectError(c.host, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		var e api.ErrorResponse
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Message == "" {
			e.Message = fmt.Sprintf("secretd answered %s", resp.Status)
		}
		return &Error{StatusCode: resp.StatusCode, Message: e.Message}
	}
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer from secretd: %w", err)
	}
	return nil
}

// connectError words a failure to reach the daemon. A socket the user may
// not open is not a daemon that is down: say what gives access instead.
func connectError(host string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("permission denied on secretd's socket %s: run the command as root, "+
			"or have the daemon started with --group GROUP and join that group (%w)", strings.TrimPrefix(host, "unix://"), err)
	}
	return fmt.Errorf("cannot connect to secretd at %s: is the daemon running? (%w)", host, err)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/_ping", nil, nil, nil)
}
