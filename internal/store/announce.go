package store

import (
	"sync"

	"github.com/secretd/secretd/internal/store/envelope"
)

// announcing holds, while the OnUpdate hooks run, the record of each
// version they announce: the hooks read that version's value from it
// (Announced) instead of reading the backend again. On a shared store the
// record came with the watch event, already authenticated; otherwise from
// the write that made it. Nothing else reads it, so a Mount still sees
// what the backend holds, never a version a hook is still pushing.
type announcing struct {
	mu   sync.Mutex
	recs map[string]*record // secret ID -> record being announced
}

// announce runs the OnUpdate hooks with r's secret, r held for Announced.
func (s *Store) announce(r *record) {
	s.ann.mu.Lock()
	if s.ann.recs == nil {
		s.ann.recs = map[string]*record{}
	}
	s.ann.recs[r.ID] = r
	s.ann.mu.Unlock()
	defer func() {
		s.ann.mu.Lock()
		// Another announcement of the secret may have replaced it.
		if s.ann.recs[r.ID] == r {
			delete(s.ann.recs, r.ID)
		}
		s.ann.mu.Unlock()
	}()
	s.notify(r.secret())
}

// Announced returns the value of sec's current version while the OnUpdate
// hooks announce it, decrypted from the record they were called for; false
// when sec is not being announced at that version (a later one replaced
// it, or a KEK rotation moved it), and the caller reads the store. The
// caller wipes the value.
func (s *Store) Announced(sec Secret) ([]byte, bool) {
	s.ann.mu.Lock()
	r := s.ann.recs[sec.ID]
	s.ann.mu.Unlock()
	if r == nil || r.kind() != s.kind || r.Name != sec.Name || len(r.Versions) == 0 || r.current() != sec.Current {
		return nil, false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		return nil, false
	}
	v := r.Versions[len(r.Versions)-1]
	data, err := envelope.OpenEnvelope(s.kek, v.Envelope, aad(r.Kind, r.ID, r.Name, v.Version))
	if err != nil {
		return nil, false // the store's own read reports it
	}
	return data, true
}
