package store

import (
	"errors"
	"regexp"
	"testing"
	"unicode/utf8"
)

// swarmName is the rule as DESIGN.md states it, written out separately
// from validate.go so the two can disagree.
var swarmName = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

// FuzzValidate checks name and label validation against the rule, and that
// every refusal is an ErrInvalid with a message, never a panic.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"a", "db_password", "-a", "a.", "a b", "ünï", "", "x=y", "k\n", "0123456789012345678901234567890123456789012345678901234567890123456789"} {
		f.Add(s, "v")
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		err := ValidateName(name)
		want := len(name) <= MaxNameLength && swarmName.MatchString(name)
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, the rule says valid=%v", name, err, want)
		}
		if err != nil && (!errors.Is(err, ErrInvalid) || err.Error() == "") {
			t.Fatalf("ValidateName(%q): error %v is not a worded ErrInvalid", name, err)
		}
		lerr := ValidateLabels(map[string]string{name: value})
		if lerr != nil && !errors.Is(lerr, ErrInvalid) {
			t.Fatalf("ValidateLabels: %v is not ErrInvalid", lerr)
		}
		if lerr == nil && (name == "" || !utf8.ValidString(name) || !utf8.ValidString(value)) {
			t.Fatalf("label %q=%q accepted", name, value)
		}
	})
}
