package secretdtest_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/secretd/secretd/secretdtest"
)

// TestWithDockerClient is what an integration test of your own looks like:
// a real secretd for the test, a secret, and a container started with the
// Docker Go client that reads it from /run/secrets.
func TestWithDockerClient(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("secretd mounts tmpfs: run as root")
	}
	// In this repository the daemon is built from source; elsewhere leave
	// Binary empty to use the secretd on $PATH.
	_, self, _, _ := runtime.Caller(0)
	bin, err := secretdtest.Build(filepath.Dir(filepath.Dir(self)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := secretdtest.Start(t, secretdtest.Options{Binary: bin})
	d.CreateSecret("db_password", []byte("s3cr3t"))

	const image = "secretdtest-example:busybox"
	if err := secretdtest.BusyboxImage([]string{"docker"}, image, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", image).Run() })

	ctx := context.Background()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
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
