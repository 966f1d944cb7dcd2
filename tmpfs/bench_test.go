package tmpfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkUpdate is the cost of one in-place rotation of a small set,
// which a secret update pays once per running container.
func BenchmarkUpdate(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to mount tmpfs")
	}
	dir := filepath.Join(b.TempDir(), "m")
	files := func(v int) []File {
		return []File{{Path: "a", Data: []byte(fmt.Sprintf("value-%d", v)), Mode: 0o444}, {Path: "tls/key", Data: []byte("k"), Mode: 0o400}}
	}
	if err := Mount(dir, files(0), Options{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { Wipe(dir) })
	b.ResetTimer()
	for i := range b.N {
		if err := Update(dir, files(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}
