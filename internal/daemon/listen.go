package daemon

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/docker/go-connections/sockets"
	"github.com/docker/go-connections/tlsconfig"
)

// TLS names the files of a mutual-TLS listener.
type TLS struct {
	CACert, Cert, Key string
}

func (t TLS) set() bool { return t.CACert != "" || t.Cert != "" || t.Key != "" }

// listen opens every --host. A unix socket is 0660 root:group; a TCP
// listener exists only with mutual TLS, because the API hands out control
// over every secret on the host.
func listen(hosts []string, group string, t TLS) ([]net.Listener, error) {
	gid := 0
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if n, nerr := strconv.Atoi(group); nerr == nil {
				gid = n
			} else {
				return nil, fmt.Errorf("--group %s: no such group", group)
			}
		} else {
			gid, _ = strconv.Atoi(g.Gid)
		}
	}
	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	for _, h := range hosts {
		proto, addr, ok := strings.Cut(h, "://")
		if !ok || addr == "" {
			closeAll()
			return nil, fmt.Errorf("invalid --host %q: use unix:///path/to/socket or tcp://host:port", h)
		}
		switch proto {
		case "unix":
			if err := os.MkdirAll(filepath.Dir(addr), 0o755); err != nil {
				closeAll()
				return nil, fmt.Errorf("--host %s: %w", h, err)
			}
			l, err := sockets.NewUnixSocket(addr, gid)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("--host %s: %w", h, err)
			}
			ls = append(ls, l)
		case "tcp":
			if !t.set() || t.CACert == "" || t.Cert == "" || t.Key == "" {
				closeAll()
				return nil, fmt.Errorf("--host %s: a TCP listener needs mutual TLS: pass --tlscacert, --tlscert and --tlskey", h)
			}
			cfg, err := tlsconfig.Server(tlsconfig.Options{
				CAFile: t.CACert, CertFile: t.Cert, KeyFile: t.Key,
				ClientAuth: tls.RequireAndVerifyClientCert,
				// Only --tlscacert may vouch for a client: a certificate
				// from any CA the host trusts for the web must not open
				// every secret on the host.
				ExclusiveRootPools: true,
			})
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("--host %s: %w", h, err)
			}
			l, err := sockets.NewTCPSocket(addr, cfg)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("--host %s: %w", h, err)
			}
			ls = append(ls, l)
		default:
			closeAll()
			return nil, fmt.Errorf("invalid --host %q: unsupported protocol %q (use unix or tcp)", h, proto)
		}
	}
	return ls, nil
}
