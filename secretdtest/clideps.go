package secretdtest

import "strings"

// DaemonPackages are the packages whose initialisation the secretd CLI
// must not pay for (issue 27, goal 1c): the daemon with its stores, metrics
// and etcd/gRPC client (protobuf descriptors), and compose-go with its JSON
// schema and image references. Their commands are in the sibling binaries
// secretd-daemon and secretd-compose. Each entry is a package path or the
// prefix of a tree of them.
var DaemonPackages = []string{
	"github.com/secretd/secretd/internal/daemon",
	"github.com/secretd/secretd/controller",
	"github.com/secretd/secretd/api/server",
	"github.com/secretd/secretd/internal/metrics",
	"github.com/secretd/secretd/internal/store/bolt",
	"github.com/secretd/secretd/internal/store/etcd",
	"github.com/secretd/secretd/internal/compose",
	"github.com/compose-spec/compose-go",
	"github.com/santhosh-tekuri/jsonschema",
	"github.com/distribution/reference",
	"github.com/docker/docker/client",
	"github.com/prometheus",
	"go.etcd.io",
	"google.golang.org/grpc",
	"google.golang.org/protobuf",
	"github.com/gogo/protobuf",
}

// DaemonPackage reports whether the package pkg is one of DaemonPackages,
// and which.
func DaemonPackage(pkg string) (string, bool) {
	for _, p := range DaemonPackages {
		if pkg == p || strings.HasPrefix(pkg, p+"/") {
			return p, true
		}
	}
	return "", false
}
