// Package plugin calls Swarm secret-driver plugins: the legacy plugin
// protocol dockerd speaks (discovery in /run/docker/plugins and spec files,
// the /Plugin.Activate handshake) and the SecretProvider.GetSecret call with
// the request and response of go-plugins-helpers' secrets package, so a
// plugin written for Swarm serves secretd unchanged.
package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker/go-connections/tlsconfig"
	"github.com/docker/go-plugins-helpers/secrets"

	"github.com/secretd/secretd/internal/source"
)

// Interface is the name a secret-driver plugin gives in its manifest.
const Interface = "secretprovider"

// DefaultTimeout bounds each call to a plugin when Registry.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// mimeType is what dockerd sends as Accept to every plugin.
const mimeType = "application/vnd.docker.plugins.v1.2+json"

// dummyHost is the Host header for unix sockets, dockerd's own.
const dummyHost = "plugin.moby.localhost"

// maxBody bounds a plugin's answer: a value under 500 KiB in base64 plus
// JSON around it.
const maxBody = source.MaxSize*4/3 + 64*1024

// Registry finds plugins by name and keeps one client per plugin address.
type Registry struct {
	// SocketsDir replaces DefaultSocketsDir (tests, rootless setups).
	SocketsDir string
	// SpecsDirs replaces DefaultSpecsDirs when not nil.
	SpecsDirs []string
	// Timeout bounds each call (activation, GetSecret); DefaultTimeout if zero.
	Timeout time.Duration

	mu      sync.Mutex
	clients map[string]*Plugin // by name
}

var _ source.Finder = (*Registry)(nil)

// Find locates plugin name and activates it, checking that it implements
// secretprovider. An activation is remembered for the address it was made
// at; a plugin that moved or failed a call is activated again.
func (r *Registry) Find(ctx context.Context, name string) (source.Provider, error) {
	return r.Plugin(ctx, name)
}

// Plugin is Find with its concrete type.
func (r *Registry) Plugin(ctx context.Context, name string) (*Plugin, error) {
	addr, err := r.Locate(name)
	if err != nil {
		// Gone: whatever comes back under this name shakes hands anew.
		r.mu.Lock()
		if old := r.clients[name]; old != nil {
			old.client.CloseIdleConnections()
			delete(r.clients, name)
		}
		r.mu.Unlock()
		return nil, err
	}
	r.mu.Lock()
	p := r.clients[name]
	r.mu.Unlock()
	if p != nil && p.addr.Addr == addr.Addr && p.activated() {
		return p, nil
	}
	p, err = newPlugin(name, addr, r.timeout())
	if err != nil {
		return nil, err
	}
	if err := p.activate(ctx); err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.clients == nil {
		r.clients = map[string]*Plugin{}
	}
	if old := r.clients[name]; old != nil && old != p {
		old.client.CloseIdleConnections()
	}
	r.clients[name] = p
	r.mu.Unlock()
	return p, nil
}

func (r *Registry) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// Plugin is one activated secret-driver plugin.
type Plugin struct {
	name    string
	addr    Address
	client  *http.Client
	base    url.URL
	timeout time.Duration

	mu     sync.Mutex
	active bool
}

var _ source.Provider = (*Plugin)(nil)
var _ source.Validator = (*Plugin)(nil)

func newPlugin(name string, addr Address, timeout time.Duration) (*Plugin, error) {
	u, err := url.Parse(addr.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: plugin %q: address %q: %w", source.ErrUnavailable, name, addr.Addr, err)
	}
	// No proxy, ever: a value must not travel anywhere but to us.
	tr := &http.Transport{Proxy: nil, MaxIdleConns: 2, IdleConnTimeout: 30 * time.Second}
	base := url.URL{Scheme: "http", Host: u.Host}
	dialer := &net.Dialer{Timeout: timeout}
	switch u.Scheme {
	case "unix":
		path := u.Path
		if path == "" {
			path = u.Host
		}
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", path)
		}
		base.Host = dummyHost
	default:
		tr.DialContext = dialer.DialContext
		// A TLS setup means TLS, whatever the scheme: dockerd sends a
		// tcp:// plugin plain HTTP even then, and a secret with it.
		if u.Scheme == "https" || addr.TLSConfig != nil {
			base.Scheme = "https"
		}
	}
	if addr.TLSConfig != nil {
		c, err := tlsconfig.Client(*addr.TLSConfig)
		if err != nil {
			return nil, fmt.Errorf("%w: plugin %q: TLS setup in %s: %w", source.ErrUnavailable, name, addr.From, err)
		}
		tr.TLSClientConfig = c
	}
	return &Plugin{name: name, addr: addr, client: &http.Client{Transport: tr}, base: base, timeout: timeout}, nil
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return p.name }

func (p *Plugin) activated() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.active
}

func (p *Plugin) setActive(v bool) {
	p.mu.Lock()
	p.active = v
	p.mu.Unlock()
}

// activate runs the handshake and checks the manifest names secretprovider.
func (p *Plugin) activate(ctx context.Context) error {
	var m struct{ Implements []string }
	body, err := p.call(ctx, "/Plugin.Activate", nil)
	if err != nil {
		return err
	}
	defer clear(body)
	if err := json.Unmarshal(body, &m); err != nil {
		return fmt.Errorf("%w: plugin %q answered the activation with something other than a manifest: %w", source.ErrUnavailable, p.name, err)
	}
	if !slices.Contains(m.Implements, Interface) {
		return fmt.Errorf("%w: plugin %q is not a secret driver: it implements %s, not %s",
			source.ErrUnknownDriver, p.name, strings.Join(m.Implements, ", "), Interface)
	}
	p.setActive(true)
	return nil
}

// Validate refuses driver options: Swarm sends none to plugins (the docker
// CLI has no --driver-opt for secrets), so a plugin would never see them.
// The plugin was found and activated to get here.
func (p *Plugin) Validate(_ context.Context, opts map[string]string) error {
	if len(opts) > 0 {
		return fmt.Errorf("%w: secret driver plugins get no driver options (Swarm sends none; given: %s): put what plugin %q needs in the secret's labels, which it receives",
			source.ErrInvalidOptions, strings.Join(source.OptionKeys(opts), ", "), p.name)
	}
	return nil
}

// Fetch asks the plugin for the value with SecretProvider.GetSecret.
func (p *Plugin) Fetch(ctx context.Context, req source.Request) (source.Value, error) {
	fail := func(err error) (source.Value, error) {
		return source.Value{}, &source.Error{Secret: req.SecretName, Source: fmt.Sprintf("secret driver plugin %q", p.name), Err: err}
	}
	if !p.activated() {
		if err := p.activate(ctx); err != nil {
			return fail(err)
		}
	}
	body, err := p.call(ctx, "/SecretProvider.GetSecret", NewRequest(req))
	if err != nil {
		return fail(err)
	}
	var res secrets.Response
	err = json.Unmarshal(body, &res)
	clear(body)
	if err != nil {
		clear(res.Value)
		return fail(fmt.Errorf("%w: the plugin's answer is not a GetSecret response: %w", source.ErrUnavailable, err))
	}
	if res.Err != "" {
		clear(res.Value)
		return fail(fmt.Errorf("%w: the plugin answered: %s", source.ErrUnavailable, source.Detail([]byte(res.Err), nil)))
	}
	if err := source.CheckValue(res.Value); err != nil {
		clear(res.Value)
		return fail(err)
	}
	return source.Value{Data: res.Value, DoNotReuse: res.DoNotReuse}, nil
}

// NewRequest is the GetSecret request Swarm would send, filled from the
// container: the container stands for both the service and the task. A
// compose container's service name is PROJECT_SERVICE, as a stack's is.
func NewRequest(req source.Request) secrets.Request {
	c := req.Container
	service := c.Name
	if project, svc := c.Labels["com.docker.compose.project"], c.Labels["com.docker.compose.service"]; project != "" && svc != "" {
		service = project + "_" + svc
	}
	return secrets.Request{
		SecretName:      req.SecretName,
		SecretLabels:    req.SecretLabels,
		ServiceHostname: c.Hostname,
		ServiceName:     service,
		ServiceID:       c.ID,
		ServiceLabels:   c.Labels,
		TaskID:          c.ID,
		TaskName:        c.Name,
		TaskImage:       c.Image,
	}
}

// call POSTs args as JSON and returns the answer's body. A non-200 answer
// is an error carrying the plugin's Err (or its body), as dockerd reads it.
// A failure to connect forgets the activation, so a restarted plugin is
// shaken hands with again.
func (p *Plugin) call(ctx context.Context, path string, args any) ([]byte, error) {
	var body bytes.Buffer
	if args != nil {
		if err := json.NewEncoder(&body).Encode(args); err != nil {
			return nil, fmt.Errorf("%w: %w", source.ErrUnavailable, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	u := p.base
	u.Path = path
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), &body)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", source.ErrUnavailable, err)
	}
	hreq.Header.Set("Accept", mimeType)
	resp, err := p.client.Do(hreq)
	if err != nil {
		p.setActive(false)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: plugin %q did not answer %s within %s", source.ErrTimeout, p.name, strings.TrimPrefix(path, "/"), p.timeout)
		}
		return nil, fmt.Errorf("%w: cannot reach plugin %q at %s: %w", source.ErrUnavailable, p.name, p.addr.Addr, errors.Unwrap(err))
	}
	defer resp.Body.Close()
	data, over, err := source.ReadLimited(resp.Body, maxBody)
	if err != nil {
		clear(data)
		p.setActive(false)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: plugin %q did not finish answering %s within %s", source.ErrTimeout, p.name, strings.TrimPrefix(path, "/"), p.timeout)
		}
		return nil, fmt.Errorf("%w: reading plugin %q's answer: %w", source.ErrUnavailable, p.name, err)
	}
	if over {
		clear(data)
		return nil, fmt.Errorf("%w: plugin %q answered with more than %d bytes", source.ErrInvalidValue, p.name, maxBody)
	}
	if resp.StatusCode != http.StatusOK {
		defer clear(data)
		var remote struct{ Err string }
		if json.Unmarshal(data, &remote) == nil && remote.Err != "" {
			return nil, fmt.Errorf("%w: the plugin answered %s: %s", source.ErrUnavailable, resp.Status, source.Detail([]byte(remote.Err), nil))
		}
		if resp.StatusCode == http.StatusNotFound {
			p.setActive(false)
		}
		return nil, fmt.Errorf("%w: the plugin answered %s: %s", source.ErrUnavailable, resp.Status, source.Detail(data, nil))
	}
	return data, nil
}
