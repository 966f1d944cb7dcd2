// Package etcdtest runs a real etcd cluster inside a test process: embedded
// members on loopback ports, each with its own data directory, that a test
// can stop and start again to take quorum away and give it back.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// Cluster is an embedded etcd cluster on 127.0.0.1.
type Cluster struct {
	t       testing.TB
	token   string
	tls     *TLS
	members []*member
}

// TLS is how a cluster serves its clients over TLS: its members' certificate
// and, with ClientCA, the CA whose client certificates it requires.
type TLS struct {
	CertFile, KeyFile string
	// ClientCA, when set, makes every member require a client certificate
	// signed by it.
	ClientCA string
}

type member struct {
	name, dir    string
	client, peer url.URL

	mu sync.Mutex
	e  *embed.Etcd
}

// Start starts an n-member cluster and waits until it has a leader. Its
// cleanup stops every member and removes their data.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return start(t, n, nil)
}

// StartTLS is Start with clients served over TLS as tls says.
func StartTLS(t testing.TB, n int, tls TLS) *Cluster {
	t.Helper()
	return start(t, n, &tls)
}

func start(t testing.TB, n int, tls *TLS) *Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "etcd-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, token: filepath.Base(dir), tls: tls}
	scheme := "http"
	if tls != nil {
		scheme = "https"
	}
	for i := range n {
		m := &member{
			name:   fmt.Sprintf("m%d", i),
			dir:    filepath.Join(dir, fmt.Sprintf("m%d", i)),
			client: url.URL{Scheme: scheme, Host: freeAddr(t)},
			peer:   url.URL{Scheme: "http", Host: freeAddr(t)},
		}
		c.members = append(c.members, m)
	}
	t.Cleanup(func() {
		for i := range c.members {
			c.Stop(i)
		}
		if t.Failed() {
			for _, m := range c.members {
				if b, err := os.ReadFile(filepath.Join(m.dir, "etcd.log")); err == nil {
					t.Logf("etcd member %s log (last 4 KiB):\n%s", m.name, tail(b, 4096))
				}
			}
		}
		os.RemoveAll(dir)
	})
	// Members of a new cluster wait for each other before any is ready.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range c.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.start(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func (c *Cluster) config(m *member) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenClientUrls = []url.URL{m.client}
	cfg.AdvertiseClientUrls = []url.URL{m.client}
	cfg.ListenPeerUrls = []url.URL{m.peer}
	cfg.AdvertisePeerUrls = []url.URL{m.peer}
	var initial []string
	for _, o := range c.members {
		initial = append(initial, o.name+"="+o.peer.String())
	}
	cfg.InitialCluster = strings.Join(initial, ",")
	cfg.InitialClusterToken = c.token
	if c.tls != nil {
		cfg.ClientTLSInfo = transport.TLSInfo{
			CertFile: c.tls.CertFile, KeyFile: c.tls.KeyFile,
			TrustedCAFile: c.tls.ClientCA, ClientCertAuth: c.tls.ClientCA != "",
		}
	}
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.UnsafeNoFsync = true // test data: speed over durability
	cfg.Logger = "zap"
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(m.dir, "etcd.log")}
	return cfg
}

func (c *Cluster) start(i int) error {
	m := c.members[i]
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return err
	}
	e, err := embed.StartEtcd(c.config(m))
	if err != nil {
		return fmt.Errorf("start etcd member %s: %w", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd member %s: %w", m.name, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("etcd member %s was not ready within 60s", m.name)
	}
	m.mu.Lock()
	m.e = e
	m.mu.Unlock()
	return nil
}

// Endpoints are the members' client addresses, stopped ones included.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, m.client.Host)
	}
	return out
}

// URL is the cluster as secretd's --store flag takes it.
func (c *Cluster) URL() string { return "etcd://" + strings.Join(c.Endpoints(), ",") }

// Stop stops member i; stopping a stopped member does nothing.
func (c *Cluster) Stop(i int) {
	m := c.members[i]
	m.mu.Lock()
	e := m.e
	m.e = nil
	m.mu.Unlock()
	if e != nil {
		e.Close()
	}
}

// Restart starts member i again on its data; a running member is left as
// it is. With too few members running to form a quorum it does not wait
// for one: Ready tells when the cluster answers again.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	m := c.members[i]
	m.mu.Lock()
	running := m.e != nil
	m.mu.Unlock()
	if running {
		return
	}
	cfg := c.config(m)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		c.t.Fatalf("restart etcd member %s: %v", m.name, err)
	}
	m.mu.Lock()
	m.e = e
	m.mu.Unlock()
}

// RestartAll starts every stopped member.
func (c *Cluster) RestartAll() {
	for i := range c.members {
		c.Restart(i)
	}
}

// Ready waits until every running member serves requests.
func (c *Cluster) Ready(timeout time.Duration) {
	c.t.Helper()
	for _, m := range c.members {
		m.mu.Lock()
		e := m.e
		m.mu.Unlock()
		if e == nil {
			continue
		}
		select {
		case <-e.Server.ReadyNotify():
		case <-time.After(timeout):
			c.t.Fatalf("etcd member %s did not become ready within %s", m.name, timeout)
		}
	}
}

// freeAddr returns a loopback address nothing listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
