package shell_test

import (
	"context"
	"testing"

	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/source/shell"
)

// BenchmarkShellFetch measures one lookup that runs `printf`: the cost of
// the shell driver itself (fork, exec of /bin/sh, the process-group dance).
func BenchmarkShellFetch(b *testing.B) {
	d := shell.New(shell.Config{})
	req := source.Request{SecretID: "id", SecretName: "db", Options: map[string]string{"lookup": "printf value"}, CommandsBy: "bench"}
	ctx := context.Background()
	for b.Loop() {
		v, err := d.Fetch(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		v.Wipe()
	}
}
