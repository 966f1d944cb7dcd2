package secretdtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// Applets are the busybox commands the test image links in /bin.
var Applets = []string{"sh", "cat", "ls", "stat", "sleep", "grep", "echo", "test", "sha256sum", "id", "wc",
	"kill", "touch", "head", "date", "seq", "printf", "true", "false", "find", "cut", "tr", "readlink",
	"sed", "md5sum", "env", "tail", "usleep"}

// BusyboxImage imports an image holding Debian's static busybox and the
// extra files given (path in the image → content), so tests need no
// registry. docker is the docker CLI invocation, e.g. []string{"docker"} or
// []string{"docker", "-H", "unix:///tmp/x.sock"}.
func BusyboxImage(docker []string, tag string, files map[string][]byte) error {
	bb, err := exec.LookPath("busybox")
	if err != nil {
		return fmt.Errorf("busybox not found: install Debian's busybox-static (make deps)")
	}
	if out, err := exec.Command("file", "-L", bb).Output(); err == nil && !bytes.Contains(out, []byte("static")) {
		return fmt.Errorf("%s is not static: install busybox-static (make deps)", bb)
	}
	root, err := os.MkdirTemp("", "secretdtest-rootfs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	// The tar's "." is the image's /: MkdirTemp's 0700 would keep every
	// user but root out of the whole image on a storage driver that
	// keeps it (vfs).
	if err := os.Chmod(root, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"bin", "etc", "tmp", "run/secrets", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755); err != nil {
		return err
	}
	for _, a := range Applets {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", a)); err != nil {
			return err
		}
	}
	base := map[string][]byte{
		"etc/passwd": []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
		"etc/group":  []byte("root:x:0:\nnogroup:x:65534:\n"),
	}
	for p, b := range files {
		base[p] = b
	}
	for p, b := range base {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o444); err != nil {
			return err
		}
	}
	tar := exec.Command("tar", "-C", root, "-c", ".")
	imp := exec.Command(docker[0], append(docker[1:], "import", "-c", `CMD ["/bin/sh"]`, "-", tag)...)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return err
	}
	imp.Stdin = pipe
	var stderr bytes.Buffer
	imp.Stderr = &stderr
	if err := tar.Start(); err != nil {
		return err
	}
	if err := imp.Run(); err != nil {
		tar.Wait()
		return fmt.Errorf("docker import: %v: %s", err, stderr.String())
	}
	return tar.Wait()
}

// Build compiles ./cmd/secretd of the module at moduleDir into dir, with
// the siblings it execs (secretd-daemon, secretd-compose) beside it, and
// returns secretd's path; for tests of this repository, which must test
// the code they sit next to rather than an installed secretd. They are
// built as `make build` builds them, static and stripped: a dynamically
// linked CLI starts measurably slower than the one users run.
func Build(moduleDir, dir string) (string, error) {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", dir+string(filepath.Separator),
		"./cmd/secretd", "./cmd/secretd-daemon", "./cmd/secretd-compose")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Dir = moduleDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "secretd"), nil
}
