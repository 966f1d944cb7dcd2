package source

import (
	"context"
	"errors"
)

// ErrNotCached is what a Cache's Load returns when it holds no value.
var ErrNotCached = errors.New("no cached value")

// Cache keeps the last value of a secret created with --cache: the store
// encrypts it like any version. Fetch uses it when the source fails.
type Cache interface {
	// Load returns the cached value, or an error wrapping ErrNotCached.
	Load(ctx context.Context, secretID string) ([]byte, error)
	// Save keeps data as the cached value. Fetch calls it after every
	// successful fetch, so it should do nothing when data equals what it holds.
	// Save must not keep data past its return: the caller wipes it.
	Save(ctx context.Context, secretID string, data []byte) error
}

// Result is what FetchCached returns: a value, and where it came from.
type Result struct {
	// Value is the value to mount.
	Value Value
	// Cached is true when the source failed and Value is the cached one.
	Cached bool
	// SourceErr is the source's failure when Cached is true: log it, and
	// let `secret inspect` say the value served is stale.
	SourceErr error
	// SaveErr is a failure to update the cache after a successful fetch;
	// the value is still good.
	SaveErr error
}

// FetchCached fetches req from driver; with a cache (nil means none) it saves
// each good value there and, when the source fails, serves the cached one.
// Values marked DoNotReuse are never saved nor served from the cache: a
// source that says so wants to be asked every time. The source's error is
// returned, unchanged, when there is no cached value.
func FetchCached(ctx context.Context, d *Drivers, driver string, req Request, cache Cache) (Result, error) {
	v, err := d.Fetch(ctx, driver, req)
	if err == nil {
		res := Result{Value: v}
		if cache != nil && !v.DoNotReuse {
			res.SaveErr = cache.Save(ctx, req.SecretID, v.Data)
		}
		return res, nil
	}
	if cache == nil {
		return Result{}, err
	}
	data, lerr := cache.Load(ctx, req.SecretID)
	if lerr != nil || CheckValue(data) != nil {
		clear(data)
		return Result{}, err
	}
	return Result{Value: Value{Data: data}, Cached: true, SourceErr: err}, nil
}
