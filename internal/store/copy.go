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
	all, secrets, err := readAll(src)
	if err != nil {
		return 0, 0, fmt.Errorf("read the source: %w", err)
	}
	if rec, err := kekOf(src); err != nil {
		return 0, 0, fmt.Errorf("read the source: %w", err)
	} else if rec == nil {
		return 0, 0, fmt.Errorf("the source holds no store (it has no key record): check --from")
	}
	n, err := countKeys(dst)
	if err != nil {
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
	if err := verifyCopy(dst, all); err != nil {
		return 0, 0, fmt.Errorf("verify the target: %w", err)
	}
	return secrets, len(all), nil
}

// kv is one key of a bucket, with its value.
type kv struct {
	bucket, key string
	value       []byte
}

// readAll reads every key of every bucket of b in one transaction, and
// counts the secrets among them.
func readAll(b Backend) (all []kv, secrets int, err error) {
	err = b.View(func(tx Tx) error {
		for _, bucket := range Buckets {
			if err := tx.ForEach(bucket, func(k string, v []byte) error {
				all = append(all, kv{bucket, k, v})
				if bucket == "secrets" {
					secrets++
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return all, secrets, err
}

// countKeys counts the keys of every bucket of b.
func countKeys(b Backend) (n int, err error) {
	err = b.View(func(tx Tx) error {
		for _, bucket := range Buckets {
			if err := tx.ForEach(bucket, func(string, []byte) error { n++; return nil }); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// verifyCopy checks that dst holds exactly the keys and values of all.
func verifyCopy(dst Backend, all []kv) error {
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
		return nil
	}); err != nil {
		return err
	}
	got, err := countKeys(dst)
	if err != nil {
		return err
	}
	if got != len(all) {
		return fmt.Errorf("it holds %d keys, the source %d: was something writing to it?", got, len(all))
	}
	return nil
}

func kekOf(b Backend) (rec *kekRecord, err error) {
	err = b.View(func(tx Tx) error {
		rec, err = getKEKRecord(tx)
		return err
	})
	return rec, err
}
