// Package bolt is the embedded store backend: one bbolt file under the data
// root, with fsync on every commit so a created secret survives a crash.
package bolt

import (
	"errors"
	"fmt"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/secretd/secretd/internal/store"
)

// Buckets every store needs; created on open so transactions never have to.
var buckets = store.Buckets

// Backend is a store.Backend over a bbolt file.
type Backend struct{ db *bbolt.DB }

var _ store.Backend = (*Backend)(nil)

// Open opens or creates the file at path with mode 0600. A second daemon on
// the same data root fails after a second instead of waiting forever.
func Open(path string) (*Backend, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return nil, fmt.Errorf("open store %s: another secretd holds it", path)
		}
		return nil, fmt.Errorf("open store %s: %w (the file is left as it is)", path, err)
	}
	// Only a new file is written to on open: opening an existing store must
	// leave its bytes as they are, even with a wrong key.
	missing := false
	db.View(func(tx *bbolt.Tx) error {
		for _, b := range buckets {
			missing = missing || tx.Bucket([]byte(b)) == nil
		}
		return nil
	})
	if missing {
		if err := db.Update(func(tx *bbolt.Tx) error {
			for _, b := range buckets {
				if _, err := tx.CreateBucketIfNotExists([]byte(b)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			db.Close()
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	return &Backend{db: db}, nil
}

// Check walks every page of the file; a corrupted file is reported, never repaired.
func (b *Backend) Check() error {
	return b.db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("store file %s is corrupted: %w", b.db.Path(), errors.Join(errs...))
		}
		return nil
	})
}

// View implements store.Backend.
func (b *Backend) View(fn func(store.Tx) error) error {
	return b.db.View(func(tx *bbolt.Tx) error { return fn(boltTx{tx}) })
}

// Update implements store.Backend.
func (b *Backend) Update(fn func(store.Tx) error) error {
	return b.db.Update(func(tx *bbolt.Tx) error { return fn(boltTx{tx}) })
}

// Close implements store.Backend.
func (b *Backend) Close() error { return b.db.Close() }

// Path is the file's location, for status output.
func (b *Backend) Path() string { return b.db.Path() }

type boltTx struct{ tx *bbolt.Tx }

func (t boltTx) bucket(name string) (*bbolt.Bucket, error) {
	bk := t.tx.Bucket([]byte(name))
	if bk == nil {
		return nil, fmt.Errorf("store file has no bucket %q: %w", name, os.ErrNotExist)
	}
	return bk, nil
}

func (t boltTx) Get(bucket, key string) ([]byte, error) {
	bk, err := t.bucket(bucket)
	if err != nil {
		return nil, err
	}
	v := bk.Get([]byte(key))
	if v == nil {
		return nil, nil
	}
	// bbolt's slices die with the transaction.
	return append([]byte{}, v...), nil
}

func (t boltTx) Put(bucket, key string, value []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Put([]byte(key), value)
}

func (t boltTx) Delete(bucket, key string) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Delete([]byte(key))
}

func (t boltTx) ForEach(bucket string, fn func(string, []byte) error) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.ForEach(func(k, v []byte) error { return fn(string(k), append([]byte{}, v...)) })
}
