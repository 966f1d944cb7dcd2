package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/secretd/secretd/internal/store/envelope"
	"github.com/secretd/secretd/internal/store/etcd/etcdtest"
)

// etcdKV reads and writes raw keys of a test's etcd: what someone who can
// write the shared store, but holds no key, can do.
type etcdKV struct {
	t   *testing.T
	cli *clientv3.Client
}

func newEtcdKV(t *testing.T, c *etcdtest.Cluster) etcdKV {
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return etcdKV{t: t, cli: cli}
}

func (kv etcdKV) get(key string) string {
	kv.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := kv.cli.Get(ctx, "/secretd/"+key)
	if err != nil || len(r.Kvs) != 1 {
		kv.t.Fatalf("get %s: %v", key, err)
	}
	return string(r.Kvs[0].Value)
}

func (kv etcdKV) put(key, value string) {
	kv.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := kv.cli.Put(ctx, "/secretd/"+key, value); err != nil {
		kv.t.Fatal(err)
	}
}

// refusedStart runs d's daemon once more on its data root and wants it to
// exit with an error saying want. One that starts instead is stopped after
// a while, and the test fails.
func refusedStart(t *testing.T, d *daemon, want string) {
	t.Helper()
	args := append([]string{"daemon", "--data-root", d.dataRoot, "-H", "unix://" + d.sock, "--mount-root", d.mountRoot,
		"--driver-name", d.driver}, d.args...)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("the daemon started on a store it must refuse (want %q):\n%s", want, errb.String())
	}
	if err == nil || !strings.Contains(errb.String(), want) {
		t.Fatalf("the daemon: %v, want a refusal saying %q:\n%s", err, want, errb.String())
	}
}

// TestSecurityDowngradedKeyRecord: someone who can write etcd and kept the
// store's key record from before record MACs strips a secret's MAC, edits
// its labels, and writes that old key record back. A host that has opened
// the store since refuses to start on it (it migrates a store once), so
// the forgery is never blessed with a new MAC. And a current key record
// whose epoch was edited no longer opens: mode, generation and epoch are
// bound to the wrapped KEK.
func TestSecurityDowngradedKeyRecord(t *testing.T) {
	t.Parallel()
	etcd := etcdtest.Start(t, 1)
	kv := newEtcdKV(t, etcd)
	keyFile := sharedKey(t)
	root, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// A store an older secretd made: its key record from before record
	// MACs, kept by whoever could read etcd then.
	kek, err := envelope.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	wk, err := envelope.DeriveKey(root, salt, "secretd kek wrap v1")
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := envelope.Seal(wk, kek.Bytes(), []byte("secretd/kek/v1"))
	if err != nil {
		t.Fatal(err)
	}
	oldRecord, _ := json.Marshal(map[string]any{"mode": "keyfile", "salt": salt, "wrapped": wrapped, "generation": 1})
	kv.put("meta/kek", string(oldRecord))

	d := startTestDaemon(t, "--store", etcd.URL(), "--key-file", keyFile)
	id := d.mustCLI("value", "secret", "create", "--label", "owner=alice", "db", "-")
	d.stop()
	current, record := kv.get("meta/kek"), kv.get("secrets/"+id)
	if current == string(oldRecord) {
		t.Fatal("the daemon did not move the old key record to the current format")
	}
	// Put the good records back at the end, so the test's cleanup can
	// start the daemon again.
	t.Cleanup(func() {
		kv.put("meta/kek", current)
		kv.put("secrets/"+id, record)
	})

	var forged map[string]any
	if err := json.Unmarshal([]byte(record), &forged); err != nil {
		t.Fatal(err)
	}
	delete(forged, "mac")
	forged["labels"] = map[string]string{"owner": "mallory"}
	b, _ := json.Marshal(forged)
	kv.put("secrets/"+id, string(b))
	kv.put("meta/kek", string(oldRecord))
	refusedStart(t, d, "the store's key record is from before record MACs, but this host has already opened the store with them")
	if kv.get("secrets/"+id) != string(b) {
		t.Fatal("the refused start rewrote the forged record")
	}

	// The current key record with its epoch edited: hosts would lock
	// themselves (autolock) or reload on a lie; it no longer opens.
	kv.put("secrets/"+id, record)
	var edited map[string]any
	if err := json.Unmarshal([]byte(current), &edited); err != nil {
		t.Fatal(err)
	}
	edited["epoch"] = 7
	b, _ = json.Marshal(edited)
	kv.put("meta/kek", string(b))
	refusedStart(t, d, "the store's key record was altered")
}
