package store_test

import (
	"fmt"
	"testing"

	"github.com/secretd/secretd/internal/store"
)

// BenchmarkGetNames is the check a Mount of a staged fill makes: five
// secrets' metadata by name, in one read, from a store of 1,000.
func BenchmarkGetNames(b *testing.B) {
	s, _ := newEnv(b).open(b, store.Config{})
	var names []string
	for i := range 1000 {
		name := fmt.Sprintf("s%04d", i)
		mustCreate(b, s, name, "value of "+name)
		if i%200 == 0 {
			names = append(names, name)
		}
	}
	for b.Loop() {
		if _, err := s.GetNames(names); err != nil {
			b.Fatal(err)
		}
	}
}
