package secretdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// EngineVersion is a Docker Engine a test can run as a private engine (see
// Engine): its dockerd and what that dockerd needs on this kind of machine.
type EngineVersion struct {
	// Name is the engine's version as tests name it: "20.10", "29.7.2".
	Name string
	// Dockerd is the dockerd binary; empty means dockerd on $PATH.
	Dockerd string
	// Config is its daemon.json. Every engine gets a file of its own, so
	// the host's /etc/docker/daemon.json (and its data root) stays out.
	Config string
	// Env is added to dockerd's environment.
	Env []string
	// StorageDriver is dockerd's --storage-driver; empty keeps its
	// default (for Engine 29, the containerd image store on overlayfs).
	StorageDriver string
	// MinAPIVersion is the oldest client API version it accepts.
	MinAPIVersion string
}

// HostDockerd is the dockerd on $PATH, Debian's Engine 20.10 on this
// project's machines, on vfs, which works on any file system. Isolate
// names the run's engine after what that dockerd says it is.
var HostDockerd = EngineVersion{Name: "20.10", Config: "{}", StorageDriver: "vfs", MinAPIVersion: "1.12"}

// releaseRE finds the major.minor of `dockerd --version`'s "Docker
// version 20.10.24+dfsg1, build ...".
var releaseRE = regexp.MustCompile(`^Docker version ([0-9]+\.[0-9]+)`)

// dockerdRelease is the major.minor version of the dockerd binary, or
// fallback when it does not say.
func dockerdRelease(bin, fallback string) string {
	out, err := exec.Command(bin, "--version").Output()
	if m := releaseRE.FindSubmatch(out); err == nil && m != nil {
		return string(m[1])
	}
	return fallback
}

// docker29 is Docker Engine 29.7.2's dockerd, built from moby's source at
// tag docker-v29.7.2 (see the README beside it).
const (
	docker29Name   = "29.7.2"
	docker29File   = "dockerd-29.7.2.xz"
	docker29SHA256 = "3435934b5afeeaa67af59dcc2c1b242faa750affd65dc7eb32ecf3a65099cdf3"
)

// SharedDirEnv names the directory that holds engines/dockerd-29.7.2.xz,
// when it is neither ../shared beside the module (as in CI) nor
// /work/shared.
const SharedDirEnv = "SECRETD_SHARED_DIR"

// Docker29 unpacks Docker Engine 29.7.2's dockerd into dir and returns it
// as an EngineVersion that behaves as Engine 29.0-29.2 do by default: it
// refuses clients below API 1.44 (DOCKER_MIN_API_VERSION=1.44). Its
// daemon.json turns time namespaces off (runc 1.1.5 here does not know
// them); it keeps the containerd image store. moduleDir is the secretd
// module, beside which CI puts ../shared. A missing or altered binary is
// an error: the engine matrix must not shrink silently.
func Docker29(moduleDir, dir string) (EngineVersion, error) {
	return docker29From([]string{os.Getenv(SharedDirEnv), filepath.Join(filepath.Dir(moduleDir), "shared"), "/work/shared"}, dir)
}

// docker29From is Docker29 with the shared directories to look in, first
// found first.
func docker29From(shared []string, dir string) (EngineVersion, error) {
	var tried []string
	var src string
	for _, d := range shared {
		if d == "" {
			continue
		}
		p := filepath.Join(d, "engines", docker29File)
		tried = append(tried, p)
		if _, err := os.Stat(p); err == nil {
			src = p
			break
		}
	}
	if src == "" {
		return EngineVersion{}, fmt.Errorf("Docker Engine %s for the engine matrix not found at %s: put the shared directory beside the clone (../shared) or name it in %s",
			docker29Name, strings.Join(tried, " or "), SharedDirEnv)
	}
	if _, err := exec.LookPath("xz"); err != nil {
		return EngineVersion{}, errors.New("xz not found: it unpacks Docker Engine 29.7.2's dockerd (make deps installs xz-utils)")
	}
	bin := filepath.Join(dir, "dockerd-"+docker29Name)
	out, err := os.OpenFile(bin, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return EngineVersion{}, err
	}
	h := sha256.New()
	unxz := exec.Command("xz", "-dc", src)
	unxz.Stdout = io.MultiWriter(out, h)
	var stderr strings.Builder
	unxz.Stderr = &stderr
	err = unxz.Run()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return EngineVersion{}, fmt.Errorf("unpack %s: %v %s", src, err, stderr.String())
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != docker29SHA256 {
		return EngineVersion{}, fmt.Errorf("%s unpacks to a dockerd with sha256 %s, not the %s of the README beside it", src, sum, docker29SHA256)
	}
	return EngineVersion{
		Name: docker29Name, Dockerd: bin,
		Config:        `{"features": {"time-namespaces": false}}`,
		Env:           []string{"DOCKER_MIN_API_VERSION=1.44"},
		MinAPIVersion: "1.44",
	}, nil
}
