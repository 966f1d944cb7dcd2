package sourced_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/secretd/secretd/errdefs"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/store"
)

// plugins finds the plugins it holds, as the plugin registry does.
type plugins map[string]source.Provider

func (p plugins) Find(_ context.Context, name string) (source.Provider, error) {
	if pr, ok := p[name]; ok {
		return pr, nil
	}
	return nil, fmt.Errorf("%w: no plugin %q", source.ErrUnknownDriver, name)
}

// TestCheckStoreNamesAMissingDriver: a value given for a driver that does
// not exist (a mistyped "shel") is refused for that cause, not because the
// driver could not keep the value; a plugin that exists is refused for
// the value.
func TestCheckStoreNamesAMissingDriver(t *testing.T) {
	s, _, _ := newService(t)
	s.Drivers.Builtin["shell"] = &fake{}
	s.Drivers.Plugins = plugins{"vault": &fake{}}
	ctx := context.Background()

	err := s.CheckStore(ctx, "db", store.SourceSpec{Driver: "shel", Stored: true})
	if !errors.Is(err, source.ErrUnknownDriver) || !errors.Is(err, errdefs.ErrInvalid) ||
		err.Error() != `secret 'db': secret driver "shel": unknown secret driver: no plugin "shel"; did you mean --driver shell?` {
		t.Errorf("driver shel with data: %v; want it named as missing, a 400", err)
	}
	err = s.CheckStore(ctx, "db", store.SourceSpec{Driver: "vault", Stored: true})
	if !errors.Is(err, source.ErrCannotStore) || !strings.Contains(err.Error(), "a plugin keeps its own secrets") {
		t.Errorf("plugin vault with data: %v; want cannot store", err)
	}
}

// TestCheckSuggestsABuiltin: a missing driver one typo away from a built-in
// one is named with it; one further away is named alone.
func TestCheckSuggestsABuiltin(t *testing.T) {
	s, _, _ := newService(t)
	s.Drivers.Builtin["shell"] = &fake{}
	s.Drivers.Plugins = plugins{}
	for driver, want := range map[string]string{
		"shel":  `no plugin "shel"; did you mean --driver shell?`,
		"Shell": `no plugin "Shell"; did you mean --driver shell?`,
		"vault": `no plugin "vault"`,
	} {
		err := s.Check(context.Background(), "db", store.SourceSpec{Driver: driver})
		if err == nil || !strings.HasSuffix(err.Error(), want) {
			t.Errorf("--driver %s: %v, want it to end with %q", driver, err, want)
		}
	}
}
