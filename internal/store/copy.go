package store

import (
	"bytes"
	"fmt"
)

// copyBatch keeps each write of a copy under etcd's default of 128
// operations per transaction.
const copyBatch = 100

// Copy copies every key of every bucket from src into the empty dst as it
// is: records stay ciphertext and the key record moves with them, so the
// key file or unlock key that opens src opens dst. It reads src in one
// transaction, refuses a dst holding anything, writes the key record
// first (a copy cut short is never taken for a new store) and then checks
// dst key by key. It returns how many secrets and keys it copied.
func Copy(dst, src Backend) (secrets, keys int, err error) {
	type kv struct {
		bucket, key string
		value       []byte
	}
	var all []kv
	if err := src.View(func(tx Tx) error {
		for _, b := range Buckets {
			if err := tx.ForEach(b, func(k string, v []byte) error {
				all = append(all, kv{b, k, v})
				if b == "secrets" {
					secrets++
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("read the source: %w", err)
	}
	if rec, err := kekOf(src); err != nil {
		return 0, 0, fmt.Errorf("read the source: %w", err)
	} else if rec == nil {
		return 0, 0, fmt.Errorf("the source holds no store (it has no key record): check --from")
	}
	n := 0
	if err := dst.View(func(tx Tx) error {
		for _, b := range Buckets {
			if err := tx.ForEach(b, func(string, []byte) error { n++; return nil }); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("read the target: %w", err)
	}
	if n > 0 {
		return 0, 0, fmt.Errorf("the target is not empty (%d keys): migrate only into an empty store", n)
	}
	// Buckets come in order meta, secrets, names: the key record lands in
	// the first batch.
	for i := 0; i < len(all); i += copyBatch {
		batch := all[i:min(i+copyBatch, len(all))]
		if err := dst.Update(func(tx Tx) error {
			for _, x := range batch {
				if err := tx.Put(x.bucket, x.key, x.value); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return 0, 0, fmt.Errorf("write the target after %d of %d keys: %w (empty the target before trying again)", i, len(all), err)
		}
	}
	got := 0
	if err := dst.View(func(tx Tx) error {
		for _, x := range all {
			v, err := tx.Get(x.bucket, x.key)
			if err != nil {
				return err
			}
			if !bytes.Equal(v, x.value) {
				return fmt.Errorf("%s/%s differs from the source", x.bucket, x.key)
			}
		}
		for _, b := range Buckets {
			if err := tx.ForEach(b, func(string, []byte) error { got++; return nil }); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return 0, 0, fmt.Errorf("verify the target: %w", err)
	}
	if got != len(all) {
		return 0, 0, fmt.Errorf("verify the target: it holds %d keys, the source %d: was something writing to it?", got, len(all))
	}
	return secrets, len(all), nil
}

func kekOf(b Backend) (rec *kekRecord, err error) {
	err = b.View(func(tx Tx) error {
		rec, err = getKEKRecord(tx)
		return err
	})
	return rec, err
}
