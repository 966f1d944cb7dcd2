package plugin_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/secretd/secretd/internal/source"
)

// BenchmarkPluginFetch measures one GetSecret through discovery, as a
// Mount would make it, against a go-plugins-helpers plugin on a unix socket.
func BenchmarkPluginFetch(b *testing.B) {
	r := dirs(b)
	servePlugin(b, filepath.Join(r.SocketsDir, "bench.sock"), &fakeDriver{})
	d := &source.Drivers{Plugins: r}
	req := source.Request{SecretName: "db", Container: container}
	ctx := context.Background()
	for b.Loop() {
		v, err := d.Fetch(ctx, "bench", req)
		if err != nil {
			b.Fatal(err)
		}
		v.Wipe()
	}
}
