package controller

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/secretd/secretd/declaration"
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

// TestHoldsAfter: a rotation gives a mount the value it announces only when
// no file of the mount that follows the secret, as an entry or read by a
// template, holds a later version already.
func TestHoldsAfter(t *testing.T) {
	v := taskView{
		entries: []declaration.Entry{
			{Kind: declaration.Secret, Source: "db", Target: "db"},
			{Kind: declaration.Secret, Source: "old", Target: "old", Version: 9},
			{Kind: declaration.Config, Source: "app.conf", Target: "app.conf"},
		},
		versions: []int{3, 9, 1},
		reads:    [][]readRef{nil, nil, {{kind: declaration.Secret, name: "api", version: 5}, {kind: declaration.Secret, name: "pin", version: 8, pinned: true}}},
	}
	for _, tc := range []struct {
		kind    declaration.Kind
		name    string
		version int
		want    bool
	}{
		{declaration.Secret, "db", 3, false},
		{declaration.Secret, "db", 2, true},
		{declaration.Config, "db", 2, false},  // another kind
		{declaration.Secret, "old", 2, false}, // pinned: not following
		{declaration.Secret, "api", 4, true},  // read by a template
		{declaration.Secret, "api", 5, false},
		{declaration.Secret, "pin", 2, false},
	} {
		if got := v.holdsAfter(tc.kind, tc.name, tc.version); got != tc.want {
			t.Errorf("holdsAfter(%s %s %d) = %v, want %v", tc.kind, tc.name, tc.version, got, tc.want)
		}
	}
}
