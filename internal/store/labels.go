package store

// UpdateLabels replaces a secret's labels, as Swarm's secret update does:
// the only change Swarm allows to a secret. It fails with ErrExists unless
// the secret is still at index (0 skips the check); guard runs inside the
// write transaction with the secret as stored, so a caller can refuse a
// body that names another secret. No version is added and nothing is
// pushed to containers: labels are not part of what a container sees.
func (s *Store) UpdateLabels(ref string, index uint64, labels map[string]string, guard func(Secret) error) (Secret, error) {
	if err := ValidateLabels(labels); err != nil {
		return Secret{}, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.kek == nil {
		// The record's MAC needs the KEK, as every write does.
		return Secret{}, ErrLocked
	}
	var out Secret
	err := s.b.Update(func(tx Tx) error {
		r, err := s.resolve(tx, ref)
		if err != nil {
			return err
		}
		if index != 0 && r.Index != index {
			return Errorf(ErrExists, "update out of sequence: secret %s is at index %d, not %d", r.Name, r.Index, index)
		}
		if guard != nil {
			if err := guard(r.secret()); err != nil {
				return err
			}
		}
		r.Labels = labels
		r.UpdatedAt = s.now()
		if r.Index, err = nextIndex(tx); err != nil {
			return err
		}
		out = r.secret()
		return putRecord(tx, r, s.macKey)
	})
	return out, err
}
