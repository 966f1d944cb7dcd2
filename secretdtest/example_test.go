package secretdtest_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/secretd/secretd/secretdtest"
)

// TestMain closes the driver slots the tests parked, and removes their
// sockets, as a test binary using this package should.
func TestMain(m *testing.M) {
	code := m.Run()
	secretdtest.CloseParked()
	os.Exit(code)
}

// TestWithDockerClient is what an integration test of your own looks like:
// an engine and a real secretd for the test, a secret, and a container
// started with the Docker Go client that reads it from /run/secrets. The
// engine is the test's own so the host's never learns the test's volume
// driver (see Engine).
func TestWithDockerClient(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("secretd mounts tmpfs: run as root")
	}
	const image = "secretdtest-example:busybox"
	engine := secretdtest.StartEngine(t, image)
	// In this repository the daemon is built from source; elsewhere leave
	// Binary empty to use the secretd on $PATH.
	_, self, _, _ := runtime.Caller(0)
	bin, err := secretdtest.Build(filepath.Dir(filepath.Dir(self)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := secretdtest.Start(t, secretdtest.Options{Binary: bin, Args: []string{"--docker-host", engine.Host}})
	d.CreateSecret("db_password", []byte("s3cr3t"))

	ctx := context.Background()
	cli, err := client.NewClientWithOpts(client.WithHost(engine.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	created, err := cli.ContainerCreate(ctx,
		&container.Config{Image: image, Cmd: []string{"cat", "/run/secrets/db_password"}, Labels: d.Labels("db_password")},
		&container.HostConfig{NetworkMode: "none", Mounts: []mount.Mount{d.Mount("/run/secrets")}}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cli.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
	})
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	waitC, errC := cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	select {
	case err := <-errC:
		t.Fatal(err)
	case <-waitC:
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, container.LogsOptions{ShowStdout: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	stdcopy.StdCopy(&out, io.Discard, logs)
	if out.String() != "s3cr3t" {
		t.Fatalf("container read %q", out.String())
	}
}
