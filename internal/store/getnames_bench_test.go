package store_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
)

// BenchmarkGetNames is the check a Mount of a staged fill makes: five
// secrets' metadata by name, in one read, from a store of 1,000.
func BenchmarkGetNames(b *testing.B) {
	dir := b.TempDir()
	bk, err := bolt.Open(filepath.Join(dir, "secrets.db"))
	if err != nil {
		b.Fatal(err)
	}
	s, _, err := store.Open(bk, store.Config{KeyFile: filepath.Join(dir, "key")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	var names []string
	for i := range 1000 {
		name := fmt.Sprintf("s%04d", i)
		if _, err := s.Create(store.Spec{Name: name, Data: []byte("value of " + name)}); err != nil {
			b.Fatal(err)
		}
		if i%200 == 0 {
			names = append(names, name)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.GetNames(names); err != nil {
			b.Fatal(err)
		}
	}
}
