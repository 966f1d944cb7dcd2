package tmpfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A spare is an empty tmpfs with a Mount's flags, writable (by root, who
// alone enters the directories spares live in) so that Fill needs one
// remount.
func TestPrepareMakesAnEmptyReadOnlySpare(t *testing.T) {
	dir := filepath.Join(testRoot(t), "spare")
	if err := Prepare(dir); err != nil {
		t.Fatal(err)
	}
	m := entryFor(t, dir)
	opts, super := optSet(m.options), optSet(m.superOptions)
	for _, o := range []string{"ro", "nosuid", "nodev", "noexec"} {
		if !opts[o] {
			t.Errorf("spare mount options %q lack %s", m.options, o)
		}
	}
	if super["noswap"] != NoswapSupported() {
		t.Errorf("spare super options %q: noswap present=%v, NoswapSupported()=%v", m.superOptions, super["noswap"], NoswapSupported())
	}
	if st, err := os.Stat(dir); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("spare's root: %v, %v; want mode 0755", st.Mode(), err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("spare holds %v (%v), want nothing", entries, err)
	}
	if err := Prepare(dir); err == nil {
		t.Error("Prepare over an existing spare succeeded")
	}
	if _, err := Wipe(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Wipe left the spare's directory: %v", err)
	}
}

// A filled spare must be indistinguishable from a mount Mount made: same
// layout, owners, flags and size, and Update and Wipe work on it.
func TestFillMatchesMount(t *testing.T) {
	root := testRoot(t)
	files := []File{
		{Path: "a.txt", Data: []byte("alpha"), UID: 1000, GID: 1001, Mode: 0o400},
		{Path: "tls/key.pem", Data: bytes.Repeat([]byte("k"), 3<<20), UID: 1000, GID: 1000, Mode: 0o440},
	}
	spare, direct := filepath.Join(root, "spare"), filepath.Join(root, "direct")
	if err := Prepare(spare); err != nil {
		t.Fatal(err)
	}
	// 3 MiB of files need more than a spare's starting size: Fill grows it.
	if err := Fill(spare, files, Options{}); err != nil {
		t.Fatal(err)
	}
	if err := Mount(direct, files, Options{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		checkVisibleFile(t, spare, f)
	}
	checkReadOnly(t, spare, true)
	if s, d := entryFor(t, spare), entryFor(t, direct); s.options != d.options || s.superOptions != d.superOptions {
		t.Errorf("filled spare %q / %q, Mount %q / %q", s.options, s.superOptions, d.options, d.superOptions)
	}
	if got, want := visibleTree(t, spare), visibleTree(t, direct); !slices.Equal(got, want) {
		t.Errorf("filled spare holds %q, Mount %q", got, want)
	}

	next := []File{{Path: "b.txt", Data: []byte("beta"), Mode: 0o444}}
	if err := Update(spare, next); err != nil {
		t.Fatal(err)
	}
	checkVisibleFile(t, spare, next[0])
	if err := Fill(spare, next, Options{}); err == nil {
		t.Error("Fill over a filled mount succeeded")
	}
	checkVisibleFile(t, spare, next[0]) // and changed nothing
	for _, d := range []string{spare, direct} {
		if _, err := Wipe(d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFillRefusesWhatIsNotASpare(t *testing.T) {
	root := testRoot(t)
	plain := filepath.Join(root, "plain")
	if err := os.Mkdir(plain, 0o755); err != nil {
		t.Fatal(err)
	}
	files := []File{{Path: "f", Data: []byte("x"), Mode: 0o444}}
	if err := Fill(plain, files, Options{}); err == nil {
		t.Error("Fill of a plain directory succeeded")
	}
	if entries, _ := os.ReadDir(plain); len(entries) != 0 {
		t.Errorf("Fill wrote into a plain directory: %v", entries)
	}
	if err := Fill(filepath.Join(root, "missing"), files, Options{}); err == nil {
		t.Error("Fill of a missing directory succeeded")
	}

	spare := filepath.Join(root, "spare")
	if err := Prepare(spare); err != nil {
		t.Fatal(err)
	}
	// A bad file set is refused before the spare is touched: it stays usable.
	if err := Fill(spare, []File{{Path: "../escape", Mode: 0o444}}, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Fill with a bad path: %v, want ErrInvalid", err)
	}
	if err := Fill(spare, files, Options{}); err != nil {
		t.Fatalf("Fill after a refused one: %v", err)
	}
	checkVisibleFile(t, spare, files[0])
	if _, err := Wipe(spare); err != nil {
		t.Fatal(err)
	}
}
