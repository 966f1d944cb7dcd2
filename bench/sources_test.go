package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/secrets"

	"github.com/secretd/secretd/api/client"
	"github.com/secretd/secretd/secretdtest"
)

// sourceMounts is how many Mounts each kind of secret is measured over.
const sourceMounts = 200

// benchPlugin is a Swarm secret-driver plugin that answers at once, so the
// numbers are secretd's cost of asking a plugin, not a backend's.
type benchPlugin struct{}

func (benchPlugin) Get(secrets.Request) secrets.Response {
	return secrets.Response{Value: []byte("plugin-value-0123456789")}
}

// BenchmarkSources measures Mount p50/p99 of a secret whose value comes
// from the shell driver (a /bin/sh per Mount) and from a secret-driver
// plugin (one HTTP call over a unix socket per Mount), next to a stored
// one. It speaks the volume plugin protocol to the daemon's socket as
// dockerd does, so no engine is involved and only Mount is timed.
func BenchmarkSources(b *testing.B) {
	plugDir, err := os.MkdirTemp("", "sdrv")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(plugDir) })
	l, err := net.Listen("unix", filepath.Join(plugDir, "benchvault.sock"))
	if err != nil {
		b.Fatal(err)
	}
	go secrets.NewHandler(benchPlugin{}).Serve(l)
	b.Cleanup(func() { l.Close() })

	opts := daemonOptions(b)
	opts.Args = append(opts.Args, "--secret-driver-dir", plugDir)
	d := secretdtest.Start(b, opts)
	d.CreateSecret("stored", []byte("stored-value-0123456789"))
	cl := d.Client()
	ctx := context.Background()
	if _, err := cl.SecretCreateFromSource(ctx, "shell", nil, client.SourceSpec{Driver: "shell", Options: map[string]string{"lookup": "printf shell-value-0123456789"}}); err != nil {
		b.Fatal(err)
	}
	if _, err := cl.SecretCreateFromSource(ctx, "plugin", nil, client.SourceSpec{Driver: "benchvault"}); err != nil {
		b.Fatal(err)
	}
	sock := filepath.Join("/run/docker/plugins", d.Driver+".sock")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	call := func(method string, body any) {
		payload, _ := json.Marshal(body)
		resp, err := hc.Post("http://plugin/"+method, "application/vnd.docker.plugins.v1.2+json", bytes.NewReader(payload))
		if err != nil {
			b.Fatalf("%s: %v", method, err)
		}
		defer resp.Body.Close()
		var out struct{ Err string }
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Err != "" {
			b.Fatalf("%s: %v %s", method, err, out.Err)
		}
	}
	for _, kind := range []string{"stored", "shell", "plugin"} {
		b.Run(kind, func(b *testing.B) {
			var times []time.Duration
			for range b.N {
				for i := range sourceMounts {
					vol := fmt.Sprintf("bench-%s-%d", kind, i)
					id := fmt.Sprintf("m%d", i)
					call("VolumeDriver.Create", map[string]any{"Name": vol, "Opts": map[string]string{"secrets": kind}})
					start := time.Now()
					call("VolumeDriver.Mount", map[string]any{"Name": vol, "ID": id})
					times = append(times, time.Since(start))
					call("VolumeDriver.Unmount", map[string]any{"Name": vol, "ID": id})
					call("VolumeDriver.Remove", map[string]any{"Name": vol})
				}
			}
			slices.Sort(times)
			b.ReportMetric(ms(quantile(times, 50)), "mount-p50-ms")
			b.ReportMetric(ms(quantile(times, 99)), "mount-p99-ms")
			b.Logf("%s secret, %d Mounts: p50 %v p99 %v", kind, len(times), quantile(times, 50), quantile(times, 99))
		})
	}
}
