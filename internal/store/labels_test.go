package store_test

import (
	"errors"
	"maps"
	"testing"

	"github.com/secretd/secretd/internal/store"
)

// TestUpdateLabels: labels change, the index moves on, the data and its
// versions do not; a stale index, bad labels or a guard's refusal change
// nothing.
func TestUpdateLabels(t *testing.T) {
	s, _ := newEnv(t).open(t, store.Config{})
	before := mustCreate(t, s, "db", "pw")
	after, err := s.UpdateLabels(before.ID[:6], before.Index, map[string]string{"team": "a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(after.Labels, map[string]string{"team": "a"}) || after.Index <= before.Index || after.Current != 1 || len(after.Versions) != 1 {
		t.Errorf("after label update: %+v", after)
	}
	if data, _, err := s.Reveal("db", 0); err != nil || string(data) != "pw" {
		t.Errorf("data after label update: %q %v", data, err)
	}
	refuse := errors.New("refused")
	for _, tc := range []struct {
		index  uint64
		labels map[string]string
		guard  func(store.Secret) error
		kind   error
	}{
		{before.Index, map[string]string{"x": "y"}, nil, store.ErrExists},
		{0, map[string]string{"a=b": "y"}, nil, store.ErrInvalid},
		{0, nil, func(store.Secret) error { return refuse }, refuse},
	} {
		if _, err := s.UpdateLabels("db", tc.index, tc.labels, tc.guard); !errors.Is(err, tc.kind) {
			t.Errorf("update at %d with %v: %v, want %v", tc.index, tc.labels, err, tc.kind)
		}
	}
	if got, _ := s.Get("db"); !maps.Equal(got.Labels, after.Labels) || got.Index != after.Index {
		t.Errorf("refused updates changed the secret: %+v", got)
	}
	if _, err := s.UpdateLabels("nope", 0, nil, nil); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing secret: %v", err)
	}
}
