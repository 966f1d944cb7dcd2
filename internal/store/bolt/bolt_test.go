package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/secretd/secretd/internal/store"
	"github.com/secretd/secretd/internal/store/bolt"
	"github.com/secretd/secretd/internal/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Contract(t, func(t *testing.T) store.Backend {
		b, err := bolt.Open(filepath.Join(t.TempDir(), "secrets.db"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestKinds(t *testing.T) {
	storetest.Kinds(t, func(t *testing.T) store.Backend {
		b, err := bolt.Open(filepath.Join(t.TempDir(), "secrets.db"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}
