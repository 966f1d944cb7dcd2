package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/secretd/secretd/internal/store/etcd/etcdtest"
)

// TestSecurityStoreTampering: etcd holds only ciphertext, and someone who can write the shared store (etcd
// without TLS, or stolen etcd credentials) but holds no key can neither
// point a name at another secret nor roll a secret back to a rotated-out
// value: the container fails to start with a clear error, the daemon logs
// the rollback and counts it.
func TestSecurityStoreTampering(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	d := startTestDaemon(t, "--store", etcd.URL(), "--key-file", sharedKey(t), "--metrics-addr", "127.0.0.1:0")
	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	get := func(key string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := cli.Get(ctx, "/secretd/"+key)
		if err != nil || len(r.Kvs) != 1 {
			t.Fatalf("get %s: %v", key, err)
		}
		return string(r.Kvs[0].Value)
	}
	put := func(key, value string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cli.Put(ctx, "/secretd/"+key, value); err != nil {
			t.Fatal(err)
		}
	}

	d.mustCLI("public-value", "secret", "create", "public", "-")
	privID := d.mustCLI("private-canary-v1", "secret", "create", "private", "-")
	// etcd holds ciphertext only: no key or value carries the data.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	all, err := cli.Get(ctx, "/", clientv3.WithPrefix())
	cancel()
	if err != nil || len(all.Kvs) == 0 {
		t.Fatalf("read back every key of etcd: %d keys, %v", len(all.Kvs), err)
	}
	for _, kv := range all.Kvs {
		if strings.Contains(string(kv.Key)+string(kv.Value), "private-canary") || strings.Contains(string(kv.Value), "public-value") {
			t.Fatalf("etcd key %s holds a secret's data in the clear", kv.Key)
		}
	}
	run := func(decl string) result {
		return docker(t, d.runArgs(decl, []string{"--rm", "--name", d.ctrName("tamper")}, "cat /run/secrets/"+decl)...)
	}

	// A name pointed at another secret's record.
	put("names/public", privID)
	if r := run("public"); r.code == 0 || strings.Contains(r.stdout, "private-canary") || !strings.Contains(r.stderr, "name index points at secret "+privID) {
		t.Fatalf("a container declaring a name moved to another secret: want refused, got %s", r)
	}

	// A rotated-out version put back.
	old := get("secrets/" + privID)
	d.mustCLI("private-canary-v2", "secret", "update", "private", "-")
	if got := run("private"); got.code != 0 || got.stdout != "private-canary-v2" {
		t.Fatalf("after the update: %s", got)
	}
	put("secrets/"+privID, old)
	r := run("private")
	if r.code == 0 || strings.Contains(r.stdout, "private-canary-v1") || !strings.Contains(r.stderr, "this host has already seen version 2") {
		t.Fatalf("a container declaring a rolled-back secret: want refused, got %s", r)
	}
	if !strings.Contains(d.log(), "store rollback refused") {
		t.Errorf("the daemon did not log the rollback")
	}
	if v := sample(scrape(t, d.metricsURL(t)), "secretd_rollbacks_refused_total"); v < 1 {
		t.Errorf("secretd_rollbacks_refused_total = %v, want at least 1", v)
	}
	// A version list edited by hand fails its MAC.
	put("secrets/"+privID, strings.Replace(get("secrets/"+privID), `"version":1`, `"version":7`, 1))
	if r := run("private"); r.code == 0 || !strings.Contains(r.stderr, "fails authentication") {
		t.Fatalf("a container declaring a secret whose record was edited: want refused, got %s", r)
	}
}
