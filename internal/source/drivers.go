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

// Storer is implemented by sources that can keep a value given at create,
// as Podman's shell driver does with its store and delete commands.
type Storer interface {
	// CanStore reports whether a secret with opts can be stored and
	// deleted: the commands are there.
	CanStore(opts map[string]string) error
	// Store keeps data in the source as req.SecretID. data is not modified.
	Store(ctx context.Context, req Request, data []byte) error
	// Delete removes req.SecretID from the source.
	Delete(ctx context.Context, req Request) error
}

// ErrCannotStore means a value was given for a driver that cannot keep it.
var ErrCannotStore = errors.New("the driver cannot store a value")

// storer returns driver's Storer, or an error saying it has none.
// A plugin is refused without being asked: Swarm sends plugins no data.
func (d *Drivers) storer(ctx context.Context, secret, driver string, opts map[string]string) (Storer, error) {
	p, ok := d.Builtin[driver]
	if !ok {
		return nil, &Error{Secret: secret, Source: sourceName(driver), Err: fmt.Errorf("%w: a plugin keeps its own secrets (Swarm sends it no data either): create the secret without data, or use --driver shell with store and delete commands", ErrCannotStore)}
	}
	s, ok := p.(Storer)
	if !ok {
		return nil, &Error{Secret: secret, Source: sourceName(driver), Err: fmt.Errorf("%w: create the secret without data", ErrCannotStore)}
	}
	if err := s.CanStore(opts); err != nil {
		return nil, &Error{Secret: secret, Source: sourceName(driver), Err: err}
	}
	return s, nil
}

// CheckStore reports, at create, whether driver can keep a value given
// with opts.
func (d *Drivers) CheckStore(ctx context.Context, secret, driver string, opts map[string]string) error {
	_, err := d.storer(ctx, secret, driver, opts)
	return err
}

// Store puts data into driver's backend as req.SecretID.
func (d *Drivers) Store(ctx context.Context, driver string, req Request, data []byte) error {
	s, err := d.storer(ctx, req.SecretName, driver, req.Options)
	if err != nil {
		return err
	}
	return s.Store(ctx, req, data)
}

// Delete removes req.SecretID from driver's backend.
func (d *Drivers) Delete(ctx context.Context, driver string, req Request) error {
	s, err := d.storer(ctx, req.SecretName, driver, req.Options)
	if err != nil {
		return err
	}
	return s.Delete(ctx, req)
}
