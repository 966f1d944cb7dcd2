package declaration

import (
	"errors"
	"path"
	"reflect"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/store"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"db_password",
		"db_password;source=api_key,target=api.key,mode=0400",
		"source=tls,target=certs/tls.key,uid=101,gid=101,mode=0440",
		"x@3;source=x@1,target=a/b",
		"a;source=b,target=a/b",
		"source=x,target=../etc/passwd",
		"source=x,target=..data",
		"source=x,mode=1777,uid=-1",
		" Source = x , TARGET = y ",
		"a;;b",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := Parse(s)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Parse(%q) error %q does not wrap errdefs.ErrInvalid", s, err)
			}
			return
		}
		if len(entries) == 0 || len(entries) > maxEntries {
			t.Fatalf("Parse(%q) returned %d entries", s, len(entries))
		}
		targets := map[string]bool{}
		for _, e := range entries {
			checkEntry(t, s, e)
			targets[e.Target] = true
		}
		for tg := range targets {
			for p := path.Dir(tg); p != "."; p = path.Dir(p) {
				if targets[p] {
					t.Fatalf("Parse(%q): target %q is both a file and a parent of %q", s, p, tg)
				}
			}
		}
		if len(targets) != len(entries) {
			t.Fatalf("Parse(%q): duplicate targets in %+v", s, entries)
		}
		out := Format(entries)
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(Format(Parse(%q))) = Parse(%q): %v", s, out, err)
		}
		if !reflect.DeepEqual(again, entries) {
			t.Fatalf("round trip of %q via %q: got %+v, want %+v", s, out, again, entries)
		}
	})
}

// checkEntry restates the rules independently of the parser, so a bug in
// one is unlikely to hide in the other.
func checkEntry(t *testing.T, s string, e Entry) {
	t.Helper()
	if err := store.ValidateName(e.Source); err != nil {
		t.Fatalf("Parse(%q): source %q: %v", s, e.Source, err)
	}
	if e.Version < 0 || e.UID < 0 || e.GID < 0 || e.UID > maxNumber || e.GID > maxNumber || e.Version > maxNumber {
		t.Fatalf("Parse(%q): number out of range in %+v", s, e)
	}
	if e.Mode > 0o777 {
		t.Fatalf("Parse(%q): mode %o above 0777", s, e.Mode)
	}
	tg := e.Target
	if tg == "" || path.IsAbs(tg) || path.Clean(tg) != tg || len(tg) > maxTargetLen ||
		strings.HasPrefix(tg, "..") || !utf8.ValidString(tg) || strings.IndexFunc(tg, unicode.IsControl) >= 0 {
		t.Fatalf("Parse(%q): bad target %q", s, tg)
	}
	for _, c := range strings.Split(tg, "/") {
		if c == "" || c == "." || c == ".." || len(c) > maxComponentLen {
			t.Fatalf("Parse(%q): bad component %q in target %q", s, c, tg)
		}
	}
}
