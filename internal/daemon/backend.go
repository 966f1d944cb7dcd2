package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/docker/go-connections/tlsconfig"

	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
	etcdstore "github.com/secretd/secretd/internal/store/etcd"
)

// StoreConfig says which backend holds the store and how to reach it.
type StoreConfig struct {
	// URL is bolt:///path or etcd://host:port[,host:port...]; empty means
	// the bolt file DATA-ROOT/secrets.db.
	URL string
	// EtcdCACert, EtcdCert and EtcdKey turn on TLS to etcd: the CA that
	// signed the members' certificates, and secretd's client certificate.
	EtcdCACert, EtcdCert, EtcdKey string
	// EtcdPrefix is put before every key secretd writes to etcd.
	EtcdPrefix string
	// EtcdTimeout bounds each request to etcd; zero means the default.
	EtcdTimeout time.Duration
	// HostID names this host in the claims it publishes to the others.
	HostID string
}

// Backend is an opened store backend and what the daemon shows about it.
// Give store.Open the embedded Backend, not this wrapper: the wrapper
// hides what the backend implements beyond store.Backend (store.Watcher).
type Backend struct {
	store.Backend
	// URL says where the store is, for `secretd status`.
	URL string
	// Etcd is the shared backend; nil for a bolt file.
	Etcd *etcdstore.Backend
}

// storeURL is a parsed --store.
type storeURL struct {
	scheme    string
	path      string   // bolt
	endpoints []string // etcd
}

func parseStoreURL(raw, dataRoot string) (storeURL, error) {
	if raw == "" {
		return storeURL{scheme: "bolt", path: filepath.Join(dataRoot, "secrets.db")}, nil
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	switch {
	case !ok:
		return storeURL{}, fmt.Errorf("--store %q: use bolt:///path or etcd://host:port[,host:port...]", raw)
	case scheme == "bolt":
		if !filepath.IsAbs(rest) {
			return storeURL{}, fmt.Errorf("--store %q: a bolt store needs an absolute path: bolt:///var/lib/secretd/secrets.db", raw)
		}
		return storeURL{scheme: "bolt", path: filepath.Clean(rest)}, nil
	case scheme == "etcd":
		rest = strings.TrimSuffix(rest, "/")
		if rest == "" {
			return storeURL{}, fmt.Errorf("--store %q: name at least one etcd member: etcd://host:port[,host:port...]", raw)
		}
		var eps []string
		for _, ep := range strings.Split(rest, ",") {
			host, port, err := net.SplitHostPort(ep)
			if err != nil || host == "" || port == "" {
				return storeURL{}, fmt.Errorf("--store %q: %q is not host:port: etcd://host:port[,host:port...]", raw, ep)
			}
			eps = append(eps, ep)
		}
		return storeURL{scheme: "etcd", endpoints: eps}, nil
	default:
		return storeURL{}, fmt.Errorf("--store: unknown scheme %s: use bolt:///path or etcd://host:port[,host:port...]", scheme)
	}
}

// OpenBackend opens the backend cfg names. A bolt file is checked page by
// page first: a daemon never runs on a corrupted store.
func OpenBackend(cfg StoreConfig, dataRoot string) (*Backend, error) {
	u, err := parseStoreURL(cfg.URL, dataRoot)
	if err != nil {
		return nil, err
	}
	tlsSet := cfg.EtcdCACert != "" || cfg.EtcdCert != "" || cfg.EtcdKey != ""
	if u.scheme == "bolt" {
		if tlsSet || cfg.EtcdPrefix != "" {
			return nil, fmt.Errorf("--etcd-* flags apply only to --store etcd://...")
		}
		if err := os.MkdirAll(filepath.Dir(u.path), 0o700); err != nil {
			return nil, fmt.Errorf("store directory: %w", err)
		}
		b, err := bolt.Open(u.path)
		if err != nil {
			return nil, err
		}
		if err := b.Check(); err != nil {
			b.Close()
			return nil, err
		}
		return &Backend{Backend: b, URL: "bolt://" + u.path}, nil
	}
	opts := etcdstore.Options{Endpoints: u.endpoints, Prefix: cfg.EtcdPrefix, Timeout: cfg.EtcdTimeout}
	if tlsSet {
		if (cfg.EtcdCert == "") != (cfg.EtcdKey == "") {
			return nil, fmt.Errorf("--etcd-cert and --etcd-key go together: give both, or neither to authenticate by CA only")
		}
		if cfg.EtcdCACert == "" {
			// Without it the members would be checked against the system's
			// CAs: any server one of them vouches for could feed this host
			// records and read what it writes.
			return nil, fmt.Errorf("--etcd-cert and --etcd-key need --etcd-cacert, the CA that signed the etcd members' certificates: secretd never trusts the system's CAs for its store")
		}
		opts.TLS, err = tlsconfig.Client(tlsconfig.Options{
			CAFile: cfg.EtcdCACert, CertFile: cfg.EtcdCert, KeyFile: cfg.EtcdKey,
			// With --etcd-cacert, only that CA vouches for the members: any
			// other server could feed this host forged records.
			ExclusiveRootPools: true,
		})
		if err != nil {
			return nil, fmt.Errorf("TLS to etcd: %w", err)
		}
	}
	b, err := etcdstore.Open(opts)
	if err != nil {
		return nil, err
	}
	return &Backend{Backend: b, URL: "etcd://" + strings.Join(u.endpoints, ",") + b.Prefix(), Etcd: b}, nil
}
