package sourced

import (
	"context"
	"crypto/subtle"
	"time"

	"github.com/secretd/secretd/internal/audit"
	"github.com/secretd/secretd/internal/source"
	"github.com/secretd/secretd/internal/store"
)

// Run keeps one refresher per secret created with --refresh until ctx
// ends: it starts those the store holds now, and matches them to the store
// again after each Sync and every half minute.
func (s *Service) Run(ctx context.Context) {
	s.mu.Lock()
	s.parent = ctx
	s.mu.Unlock()
	s.Sync()
	// Only another host's writes need the poll: this host's API calls
	// Sync after each create and rm. On a store of its own, a full list
	// every 30 s would cost a host of 10,000 secrets CPU while its
	// containers start, for nothing.
	var tick <-chan time.Time
	if s.Store.Shared() {
		t := time.NewTicker(syncEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			s.mu.Lock()
			all := s.refreshers
			s.refreshers = nil
			s.mu.Unlock()
			for _, r := range all {
				r.cancel()
				<-r.done
			}
			return
		case <-tick:
			s.Sync()
		}
	}
}

// Sync starts a refresher for each refreshed secret that has none and
// stops those of secrets removed. The API calls it after a create or a rm.
func (s *Service) Sync() {
	s.mu.Lock()
	ctx := s.parent
	s.mu.Unlock()
	if ctx == nil || ctx.Err() != nil {
		return
	}
	list, err := s.Store.List(store.Filter{})
	if err != nil {
		s.Log.Warn("secret refreshers not matched to the store", "err", err)
		return
	}
	want := map[string]store.Secret{}
	for _, sec := range list {
		if sec.Source != nil && sec.Source.Refresh > 0 {
			want[sec.ID] = sec
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refreshers == nil {
		s.refreshers = map[string]*running{}
	}
	for id, r := range s.refreshers {
		if _, ok := want[id]; !ok {
			r.cancel() // its loop ends at its next select; nothing waits here
			delete(s.refreshers, id)
			s.Log.Info("secret refresh stopped: the secret was removed", "id", id)
		}
	}
	for id, sec := range want {
		if _, ok := s.refreshers[id]; !ok {
			s.refreshers[id] = s.start(ctx, sec)
		}
	}
}

// Refreshing reports whether secret id has a running refresher.
func (s *Service) Refreshing(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.refreshers[id]
	return ok
}

// start runs sec's refresher; s.mu held.
func (s *Service) start(ctx context.Context, sec store.Secret) *running {
	ctx, cancel := context.WithCancel(ctx)
	r := &source.Refresher{
		Interval: sec.Source.Refresh,
		Fetch: func(ctx context.Context) (source.Value, error) {
			return s.fetch(ctx, sec, source.Container{})
		},
		OnChange: func(ctx context.Context, v source.Value) error { return s.refreshed(ctx, sec, v) },
		OnError: func(err error, consecutive int) {
			s.count(err)
			s.Log.Error("secret refresh failed: containers keep their files", "secret", sec.Name, "driver", sec.Source.Driver, "failures_in_a_row", consecutive, "err", err)
		},
	}
	// The first poll compares with the stored version, so a daemon restart
	// does not roll out a value that did not change.
	if cur, _, err := s.Store.Reveal(sec.ID, 0); err == nil {
		r.Seed(cur)
		clear(cur)
	}
	run := &running{cancel: cancel, r: r, done: make(chan struct{})}
	go func() {
		defer close(run.done)
		_ = r.Run(ctx)
	}()
	s.Log.Info("secret refresh started", "secret", sec.Name, "driver", sec.Source.Driver, "every", sec.Source.Refresh)
	return run
}

// refreshed stores a changed value as the secret's next version through
// the store's normal update, which rotates it into running containers.
func (s *Service) refreshed(ctx context.Context, sec store.Secret, v source.Value) error {
	// Hosts sharing a store each poll: the first to see a change stores
	// it, the others find it current and store nothing.
	cur, _, err := s.Store.Reveal(sec.ID, 0)
	same := err == nil && subtle.ConstantTimeCompare(cur, v.Data) == 1
	clear(cur)
	if same {
		return nil
	}
	var pins []int
	if s.Pins != nil {
		cur, err := s.Store.Get(sec.ID)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		pins, err = s.Pins(pctx, cur)
		cancel()
		if err != nil {
			return err
		}
	}
	updated, err := s.Store.Update(sec.ID, v.Data, 0, func(store.Secret) ([]int, error) { return pins, nil })
	if err != nil {
		return err
	}
	s.Log.Info("secret refreshed from its source", "secret", updated.Name, "id", updated.ID, "version", updated.Current, "driver", sec.Source.Driver)
	if s.Audit != nil {
		s.Audit.Log(audit.Event{Event: audit.SecretUpdate, Secret: updated.Name, SecretID: updated.ID, Version: updated.Current})
	}
	return nil
}
