package daemon

import (
	"slices"
	"strings"
	"testing"
)

func TestParseStoreURL(t *testing.T) {
	for _, tc := range []struct {
		in, scheme, path string
		endpoints        []string
		err              string
	}{
		{in: "", scheme: "bolt", path: "/data/secrets.db"},
		{in: "bolt:///var/lib/x/s.db", scheme: "bolt", path: "/var/lib/x/s.db"},
		{in: "etcd://h1:2379", scheme: "etcd", endpoints: []string{"h1:2379"}},
		{in: "etcd://h1:2379,10.0.0.2:2379,[::1]:2379/", scheme: "etcd", endpoints: []string{"h1:2379", "10.0.0.2:2379", "[::1]:2379"}},
		{in: "bolt://relative.db", err: "absolute path"},
		{in: "etcd://", err: "at least one etcd member"},
		{in: "etcd://h1", err: `"h1" is not host:port`},
		{in: "etcd://h1:2379,,h2:2379", err: "is not host:port"},
		{in: "consul://h:1", err: "unknown scheme consul: use bolt:///path or etcd://"},
		{in: "/var/lib/s.db", err: "use bolt:///path"},
	} {
		u, err := parseStoreURL(tc.in, "/data")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || u.scheme != tc.scheme || u.path != tc.path || !slices.Equal(u.endpoints, tc.endpoints) {
			t.Errorf("%q: %+v, %v", tc.in, u, err)
		}
	}
}

// TestEtcdClientCertNeedsCA: a client certificate for etcd without the CA
// of the members is refused before anything is dialled: the system's CAs
// must never vouch for the store.
func TestEtcdClientCertNeedsCA(t *testing.T) {
	_, err := OpenBackend(StoreConfig{URL: "etcd://127.0.0.1:1", EtcdCert: "c.pem", EtcdKey: "k.pem"}, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "--etcd-cert and --etcd-key need --etcd-cacert") {
		t.Errorf("a client certificate without --etcd-cacert: %v", err)
	}
}
