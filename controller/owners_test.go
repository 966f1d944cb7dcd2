package controller

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// The owner cache is written behind the map: a Mount does not wait for the
// disk, the files match the map once wait returns, and a daemon started
// later reads what the last one remembered.
func TestOwnersWrittenBehind(t *testing.T) {
	dir := t.TempDir()
	o := loadOwners(dir)
	o.remember("v1", owner{ID: "id1", Names: []string{"/web"}, Labels: map[string]string{LabelSecrets: "s1", "other": "x"}})
	o.remember("v2", owner{ID: "id2", Labels: map[string]string{LabelSecrets: "s2"}})
	if w, ok := o.get("v1"); !ok || w.ID != "id1" {
		t.Fatalf("get before the write: %+v %v", w, ok)
	}
	o.wait()
	again := loadOwners(dir)
	w, ok := again.get("v1")
	if !ok || w.ID != "id1" || w.Labels[LabelSecrets] != "s1" {
		t.Fatalf("reloaded v1: %+v %v", w, ok)
	}
	if _, kept := w.Labels["other"]; kept {
		t.Errorf("kept a label that is not secretd's: %v", w.Labels)
	}

	o.forget("id1")
	o.wait()
	if _, err := os.Stat(filepath.Join(dir, "v1"+ownerSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("forgotten volume's file: %v", err)
	}
	if _, ok := loadOwners(dir).get("v2"); !ok {
		t.Error("v2 lost when v1 was forgotten")
	}
}

// Many Mounts of one volume at once: the file ends with the last owner.
func TestOwnersLastWriteWins(t *testing.T) {
	dir := t.TempDir()
	o := loadOwners(dir)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.remember("v", owner{ID: "id" + strings.Repeat("x", i)})
		}()
	}
	wg.Wait()
	o.remember("v", owner{ID: "last"})
	o.wait()
	if w, _ := loadOwners(dir).get("v"); w.ID != "last" {
		t.Errorf("file holds %q, want the last owner", w.ID)
	}
	if tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
}

// A file that cannot be written is reported, and the map still serves.
func TestOwnersWriteFailureReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o := loadOwners(dir) // a file, not a directory: every write fails
	var mu sync.Mutex
	var failed []string
	o.failed = func(v string, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, v)
	}
	o.remember("v1", owner{ID: "id1"})
	o.wait()
	mu.Lock()
	defer mu.Unlock()
	if len(failed) != 1 || failed[0] != "v1" {
		t.Errorf("reported %v, want v1", failed)
	}
	if w, ok := o.get("v1"); !ok || w.ID != "id1" {
		t.Errorf("the map lost v1: %+v %v", w, ok)
	}
}
