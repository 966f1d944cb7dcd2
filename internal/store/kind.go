package store

// Secrets and configs are kept alike: the same records, versions, pins,
// encryption and MACs, in the same bucket, so every key operation (KEK
// rotation, MAC migration, copy, the watch of a shared store) covers both
// with no code of its own. What tells them apart:
//
//   - the record's kind, covered by its MAC and by each version's AAD, so a
//     record or an envelope moved from one kind to the other is refused;
//   - the name index: a config's name is kept under configIndexPrefix, so a
//     secret and a config may share a name, as in Swarm;
//   - the size cap (Swarm's: under 500 KiB for a secret, 1000 KiB for a
//     config) and the nouns of the messages.
//
// A Store is one kind's view of the store: Open returns the secrets' view,
// Configs the configs' view of the same store.

// Kind is what a record holds: a secret or a config.
type Kind string

const (
	// KindSecret is a secret: sensitive, under 500 KiB.
	KindSecret Kind = "secret"
	// KindConfig is a config: not sensitive, under 1000 KiB.
	KindConfig Kind = "config"
)

// MaxConfigSize is Swarm's limit: config data must be strictly smaller.
const MaxConfigSize = 1000 * 1024

// configIndexPrefix keeps configs' names apart from secrets' in the name
// index; ':' is never part of a name.
const configIndexPrefix = "config:"

// String is the kind's noun, as messages use it.
func (k Kind) String() string { return string(k) }

// MaxSize is the kind's size cap: data must be strictly smaller.
func (k Kind) MaxSize() int {
	if k == KindConfig {
		return MaxConfigSize
	}
	return MaxSecretSize
}

// Valid reports whether k is a kind the store keeps.
func (k Kind) Valid() bool { return k == KindSecret || k == KindConfig }

// recordKind is how a record stores k: empty for a secret, so records from
// before configs read back, and keep their MAC, unchanged.
func (k Kind) recordKind() string {
	if k == KindSecret {
		return ""
	}
	return string(k)
}

// kindOf is the kind a record's stored kind names; an unknown one (a
// newer secretd's) is neither kind, and no view finds it.
func kindOf(stored string) Kind {
	if stored == "" {
		return KindSecret
	}
	return Kind(stored)
}

// indexKey is name's key in the name index for kind k.
func (k Kind) indexKey(name string) string {
	if k == KindSecret {
		return name
	}
	return configIndexPrefix + name
}

// Configs returns the configs' view of the store: the same methods, keys
// and lock as s, over configs.
func (s *Store) Configs() *Store { return s.Of(KindConfig) }

// Of returns the view of the store over records of kind k.
func (s *Store) Of(k Kind) *Store {
	if k == s.kind {
		return s
	}
	return &Store{core: s.core, kind: k}
}

// Kind is the kind of records this view serves.
func (s *Store) Kind() Kind { return s.kind }
