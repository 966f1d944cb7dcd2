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

// BenchmarkFill is a Mount's tmpfs step when a spare is ready: five small
// files into an empty spare (made outside the timer), read-only after.
func BenchmarkFill(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to mount tmpfs")
	}
	root := b.TempDir()
	var files []File
	for i := range 5 {
		files = append(files, File{Path: fmt.Sprintf("secret_%d", i), Data: []byte("value-0123456789abcdef0123456789abcdef"), Mode: 0o444})
	}
	for i := range b.N {
		b.StopTimer()
		dir := filepath.Join(root, fmt.Sprintf("m%d", i))
		if err := Prepare(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := Fill(dir, files, Options{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := Wipe(dir); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkWipe is an Unmount's tmpfs step on a host with 2,000 other
// mounts (a busy container host has a few per container): zero, unmount,
// and check that nothing is left mounted before the removal, by statx and
// by the mountinfo scan kernels before 5.8 get.
func BenchmarkWipe(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to mount tmpfs")
	}
	root := b.TempDir()
	others := filepath.Join(root, "others")
	for i := range 2000 {
		dir := filepath.Join(others, fmt.Sprint(i))
		if err := Prepare(dir); err != nil {
			b.Fatal(err)
		}
	}
	b.Cleanup(func() {
		for i := range 2000 {
			Wipe(filepath.Join(others, fmt.Sprint(i)))
		}
	})
	files := []File{{Path: "a", Data: []byte("value"), Mode: 0o444}}
	for _, statx := range []bool{true, false} {
		b.Run(fmt.Sprintf("statx=%v", statx), func(b *testing.B) {
			defer func(old bool) { statxMountRoot = old }(statxMountRoot)
			statxMountRoot = statx
			for i := range b.N {
				b.StopTimer()
				dir := filepath.Join(root, fmt.Sprintf("m%d", i))
				if err := Mount(dir, files, Options{}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := Wipe(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
