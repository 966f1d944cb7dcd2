package controller

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/secretd/secretd/declaration"
	"github.com/secretd/secretd/tmpfs"
)

// TestTransitionRefusesIllegalMoves: a task moves only along its life
// (doc.go), and only from the state it is in.
func TestTransitionRefusesIllegalMoves(t *testing.T) {
	legal := map[[2]taskState]bool{
		{mounting, mounted}: true, {mounting, gone}: true,
		{mounted, unmounting}: true, {mounted, gone}: true,
		{unmounting, unmounting}: true, {unmounting, gone}: true,
	}
	all := []taskState{mounting, mounted, unmounting, gone}
	for _, from := range all {
		for _, to := range all {
			tk := newTask("m1", "v", "/x", nil)
			tk.state = from
			err := tk.transition(from, to)
			if legal[[2]taskState{from, to}] != (err == nil) {
				t.Errorf("%s -> %s: %v, legal %v", from, to, err, legal[[2]taskState{from, to}])
			}
			if err != nil && tk.state != from {
				t.Errorf("%s -> %s refused but the state changed to %s", from, to, tk.state)
			}
			for _, other := range all {
				if other == from {
					continue
				}
				tk.state = other
				if err := tk.transition(from, to); err == nil {
					t.Errorf("a task in %s moved as if it were in %s (to %s)", other, from, to)
				}
			}
		}
	}
}

// TestReadersDoNotWaitForContentSteps: while a Mount builds its task,
// views, claims and renames answer at once; a content step (a wipe)
// waits for the Mount and then finds its result.
func TestReadersDoNotWaitForContentSteps(t *testing.T) {
	for _, filled := range []bool{true, false} {
		tk := newTask("m1", "v", "/x", nil) // busy, as a Mount's task is
		if v := tk.view(); v.state != mounting || v.live() {
			t.Fatalf("new task: %s, live %v", v.state, v.live())
		}
		if _, ok := tk.claim("c1", ""); ok {
			t.Fatal("a task still mounting was claimed by a container")
		}
		tk.rename("c1", "x") // answers at once, changes nothing
		done := make(chan error, 1)
		var did []string
		go func() {
			done <- tk.wipe(func(v taskView) error {
				did = append(did, v.state.String())
				return nil
			})
		}()
		select {
		case err := <-done:
			t.Fatalf("a wipe ran while the Mount was still building: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
		if filled {
			if err := tk.release(mounting, mounted, nil); err != nil {
				t.Fatal(err)
			}
		} else {
			tk.abandon()
		}
		err := <-done
		switch {
		case filled && (err != nil || !slices.Equal(did, []string{"unmounting"}) || tk.view().state != gone):
			t.Errorf("wipe after the Mount: %v, ran in %v, state %s", err, did, tk.view().state)
		case !filled && (!errors.Is(err, errNotLive) || len(did) != 0):
			t.Errorf("wipe after a failed Mount: %v, ran %v; want errNotLive without running", err, did)
		}
	}
}

// TestFailedWipeCanBeRetried: a wipe that fails leaves the task
// unmounting, hidden from readers, and the next wipe tries again.
func TestFailedWipeCanBeRetried(t *testing.T) {
	tk := newTask("m1", "v", "/x", nil)
	if err := tk.release(mounting, mounted, nil); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := tk.wipe(func(taskView) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("failed wipe: %v", err)
	}
	if v := tk.view(); v.state != unmounting || v.live() {
		t.Fatalf("after a failed wipe: %s, live %v", v.state, v.live())
	}
	if _, ok := tk.claim("c1", ""); ok {
		t.Fatal("a task being unmounted was claimed")
	}
	if err := tk.wipe(func(taskView) error { return nil }); err != nil || tk.view().state != gone {
		t.Fatalf("second wipe: %v, state %s", err, tk.view().state)
	}
	if tk.drop() {
		t.Fatal("a gone task was dropped again")
	}
}

// TestRefreshKeepsNewerVersion: a rotation's value decrypted before a
// newer version overtook it (by a later rotation, or a Mount that read the
// store) never puts the older version back; a newer one is written.
func TestRefreshKeepsNewerVersion(t *testing.T) {
	tk := newTask("m1", "v", "/nonexistent-secretd-mount", nil)
	entries := []declaration.Entry{{Kind: declaration.Secret, Source: "db", Target: "db"}}
	tk.declare(entries)
	if err := tk.release(mounting, mounted, func(v *taskView) { v.versions, v.ids = []int{3}, []string{"id-db"} }); err != nil {
		t.Fatal(err)
	}
	read := func(version int, id string) func(taskView) (content, error) {
		return func(taskView) (content, error) {
			return content{files: []tmpfs.File{{Path: "db", Data: []byte("x")}}, versions: []int{version}, ids: []string{id},
				reads: make([][]readRef, 1), rendered: make([]bool, 1)}, nil
		}
	}
	log := slog.New(slog.DiscardHandler)
	if v, changed, err := tk.refresh(read(2, "id-db"), log); err != nil || changed || !slices.Equal(v.versions, []int{3}) {
		t.Fatalf("refresh with an older version: changed %v, err %v, versions %v; want the mount left at 3", changed, err, v.versions)
	}
	// A newer version, or a secret of the same name created anew, is
	// written: here the write fails, as the directory is no mount.
	for _, c := range []struct {
		version int
		id      string
	}{{4, "id-db"}, {1, "id-db2"}} {
		if _, _, err := tk.refresh(read(c.version, c.id), log); err == nil {
			t.Errorf("refresh to version %d of %s did not try to write", c.version, c.id)
		}
	}
}
