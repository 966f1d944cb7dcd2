// Package storetest holds the contract every store.Backend must keep, as
// tests each backend's package runs against a fresh backend of its own.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/secretd/secretd/internal/store"
)

// Contract runs the backend contract; open returns a fresh, empty backend
// (the test closes it).
func Contract(t *testing.T, open func(t *testing.T) store.Backend) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, store.Backend)
	}{
		{"GetPutDelete", getPutDelete},
		{"EmptyValueIsNotAbsent", emptyValueIsNotAbsent},
		{"FailedUpdateCommitsNothing", failedUpdateCommitsNothing},
		{"UpdateSeesItsOwnWrites", updateSeesItsOwnWrites},
		{"ForEachInKeyOrder", forEachInKeyOrder},
		{"ValuesAreCopies", valuesAreCopies},
		{"UnknownBucket", unknownBucket},
		{"LargeValue", largeValue},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := open(t)
			defer b.Close()
			c.run(t, b)
		})
	}
}

func getPutDelete(t *testing.T, b store.Backend) {
	mustUpdate(t, b, func(tx store.Tx) error {
		if v, err := tx.Get("secrets", "a"); err != nil || v != nil {
			return fmt.Errorf("absent key: %q, %v; want nil, nil", v, err)
		}
		return tx.Put("secrets", "a", []byte("1"))
	})
	mustView(t, b, func(tx store.Tx) error {
		if v, err := tx.Get("secrets", "a"); err != nil || string(v) != "1" {
			return fmt.Errorf("committed key: %q, %v; want 1", v, err)
		}
		if v, _ := tx.Get("names", "a"); v != nil {
			return fmt.Errorf("buckets are not separate: names/a is %q", v)
		}
		return nil
	})
	mustUpdate(t, b, func(tx store.Tx) error {
		if err := tx.Delete("secrets", "a"); err != nil {
			return err
		}
		return tx.Delete("secrets", "never-there")
	})
	mustView(t, b, func(tx store.Tx) error {
		if v, err := tx.Get("secrets", "a"); err != nil || v != nil {
			return fmt.Errorf("deleted key: %q, %v; want nil, nil", v, err)
		}
		return nil
	})
}

func emptyValueIsNotAbsent(t *testing.T, b store.Backend) {
	mustUpdate(t, b, func(tx store.Tx) error { return tx.Put("meta", "e", []byte{}) })
	mustView(t, b, func(tx store.Tx) error {
		if v, err := tx.Get("meta", "e"); err != nil || v == nil || len(v) != 0 {
			return fmt.Errorf("empty value: %q (nil %t), %v", v, v == nil, err)
		}
		return nil
	})
}

func failedUpdateCommitsNothing(t *testing.T, b store.Backend) {
	boom := errors.New("boom")
	err := b.Update(func(tx store.Tx) error {
		if err := tx.Put("secrets", "x", []byte("1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	mustView(t, b, func(tx store.Tx) error {
		if v, _ := tx.Get("secrets", "x"); v != nil {
			return fmt.Errorf("a failed update left %q", v)
		}
		return nil
	})
}

func updateSeesItsOwnWrites(t *testing.T, b store.Backend) {
	mustUpdate(t, b, func(tx store.Tx) error {
		for _, k := range []string{"b", "c"} {
			if err := tx.Put("names", k, []byte("old-"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	mustUpdate(t, b, func(tx store.Tx) error {
		tx.Put("names", "a", []byte("new-a"))
		tx.Put("names", "b", []byte("new-b"))
		tx.Delete("names", "c")
		if v, _ := tx.Get("names", "b"); string(v) != "new-b" {
			return fmt.Errorf("own write: %q", v)
		}
		if v, _ := tx.Get("names", "c"); v != nil {
			return fmt.Errorf("own delete: %q", v)
		}
		got := list(t, tx, "names")
		if want := []string{"a=new-a", "b=new-b"}; !slices.Equal(got, want) {
			return fmt.Errorf("ForEach inside the update: %v, want %v", got, want)
		}
		return nil
	})
}

func forEachInKeyOrder(t *testing.T, b store.Backend) {
	keys := []string{"m", "a", "z", "b0", "b", "0"}
	mustUpdate(t, b, func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.Put("secrets", k, []byte(k)); err != nil {
				return err
			}
		}
		return tx.Put("names", "other", []byte("x"))
	})
	mustView(t, b, func(tx store.Tx) error {
		got := list(t, tx, "secrets")
		want := []string{"0=0", "a=a", "b=b", "b0=b0", "m=m", "z=z"}
		if !slices.Equal(got, want) {
			return fmt.Errorf("ForEach: %v, want %v", got, want)
		}
		return nil
	})
	stop := errors.New("stop")
	n := 0
	err := b.View(func(tx store.Tx) error {
		return tx.ForEach("secrets", func(string, []byte) error { n++; return stop })
	})
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("ForEach went on after fn failed: %d calls, %v", n, err)
	}
}

func valuesAreCopies(t *testing.T, b store.Backend) {
	in := []byte("value")
	mustUpdate(t, b, func(tx store.Tx) error { return tx.Put("meta", "k", in) })
	in[0] = 'X'
	var got []byte
	mustView(t, b, func(tx store.Tx) (err error) {
		got, err = tx.Get("meta", "k")
		return err
	})
	if string(got) != "value" {
		t.Fatalf("the backend kept the caller's slice: %q", got)
	}
	got[0] = 'Y'
	mustView(t, b, func(tx store.Tx) error {
		if v, _ := tx.Get("meta", "k"); string(v) != "value" {
			return fmt.Errorf("a returned slice aliases the stored value: %q", v)
		}
		return nil
	})
}

func unknownBucket(t *testing.T, b store.Backend) {
	err := b.Update(func(tx store.Tx) error { return tx.Put("nope", "k", []byte("v")) })
	if err == nil {
		t.Fatal("a put into a bucket the store does not have succeeded")
	}
}

func largeValue(t *testing.T, b store.Backend) {
	v := bytes.Repeat([]byte{0xa5}, 600<<10) // a record with a few large versions
	mustUpdate(t, b, func(tx store.Tx) error { return tx.Put("secrets", "big", v) })
	mustView(t, b, func(tx store.Tx) error {
		if got, err := tx.Get("secrets", "big"); err != nil || !bytes.Equal(got, v) {
			return fmt.Errorf("large value: %d bytes, %v", len(got), err)
		}
		return nil
	})
}

func list(t *testing.T, tx store.Tx, bucket string) []string {
	t.Helper()
	var out []string
	if err := tx.ForEach(bucket, func(k string, v []byte) error {
		out = append(out, k+"="+string(v))
		return nil
	}); err != nil {
		t.Fatalf("ForEach %s: %v", bucket, err)
	}
	return out
}

func mustUpdate(t *testing.T, b store.Backend, fn func(store.Tx) error) {
	t.Helper()
	if err := b.Update(fn); err != nil {
		t.Fatalf("update: %v", err)
	}
}

func mustView(t *testing.T, b store.Backend, fn func(store.Tx) error) {
	t.Helper()
	if err := b.View(fn); err != nil {
		t.Fatalf("view: %v", err)
	}
}
