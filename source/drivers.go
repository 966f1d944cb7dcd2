package source

import (
	"context"
	"errors"
	"fmt"
)

// Finder finds a driver that is not built in (a plugin) by name.
type Finder interface {
	// Find returns the Provider called name, or an error wrapping
	// ErrUnknownDriver when there is none.
	Find(ctx context.Context, name string) (Provider, error)
}

// Drivers resolves the driver name a secret was created with to the
// Provider that serves it: built-in drivers first, then plugins.
type Drivers struct {
	// Builtin maps reserved names ("shell") to their providers.
	Builtin map[string]Provider
	// Plugins finds the other names; nil means built-ins only.
	Plugins Finder
}

// Lookup returns the Provider for driver name.
func (d *Drivers) Lookup(ctx context.Context, name string) (Provider, error) {
	if name == "" {
		return nil, fmt.Errorf("%w: the driver name is empty", ErrUnknownDriver)
	}
	if p, ok := d.Builtin[name]; ok {
		return p, nil
	}
	if d.Plugins == nil {
		return nil, fmt.Errorf("%w %q: secretd has no plugin support configured", ErrUnknownDriver, name)
	}
	return d.Plugins.Find(ctx, name)
}

// Validate checks, at create, that driver exists and accepts opts. The
// error never shows an option's value.
func (d *Drivers) Validate(ctx context.Context, secret, driver string, opts map[string]string) error {
	p, err := d.Lookup(ctx, driver)
	if err != nil {
		return &Error{Secret: secret, Source: sourceName(driver), Err: err}
	}
	if v, ok := p.(Validator); ok {
		if err := v.Validate(ctx, opts); err != nil {
			var se *Error
			if errors.As(err, &se) {
				return err
			}
			return &Error{Secret: secret, Source: sourceName(driver), Err: err}
		}
	}
	return nil
}

// Fetch gets req's value from driver and checks it fits the store's limits.
// Every error is an *Error naming the secret and the driver.
func (d *Drivers) Fetch(ctx context.Context, driver string, req Request) (Value, error) {
	p, err := d.Lookup(ctx, driver)
	if err != nil {
		return Value{}, &Error{Secret: req.SecretName, Source: sourceName(driver), Err: err}
	}
	v, err := p.Fetch(ctx, req)
	if err != nil {
		v.Wipe()
		var se *Error
		if errors.As(err, &se) {
			return Value{}, err
		}
		return Value{}, &Error{Secret: req.SecretName, Source: sourceName(driver), Err: err}
	}
	if err := CheckValue(v.Data); err != nil {
		v.Wipe()
		return Value{}, &Error{Secret: req.SecretName, Source: sourceName(driver), Err: err}
	}
	return v, nil
}

// sourceName is how errors name a driver.
func sourceName(driver string) string {
	if driver == "shell" {
		return "shell driver"
	}
	return fmt.Sprintf("secret driver %q", driver)
}
