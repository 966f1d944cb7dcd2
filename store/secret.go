package store

import (
	"crypto/rand"
	"math/big"
	"strconv"
	"time"

	"github.com/secretd/secretd/store/envelope"
)

// Secret is a secret's metadata as the API shows it. It never carries data.
type Secret struct {
	ID        string
	Name      string
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Index changes on every write, as Swarm's Version.Index does.
	Index uint64
	// Current is the version a container gets when it does not pin one.
	Current int
	// Versions are the versions still kept, oldest first.
	Versions []Version
}

// Version describes one stored version of a secret's data.
type Version struct {
	Version   int
	CreatedAt time.Time
}

// HasVersion reports whether version v is still kept.
func (s Secret) HasVersion(v int) bool {
	for _, x := range s.Versions {
		if x.Version == v {
			return true
		}
	}
	return false
}

// record is the stored form of a secret: metadata in the clear (so `ls`
// works while locked) and every version as an envelope.
type record struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created"`
	UpdatedAt time.Time         `json:"updated"`
	Index     uint64            `json:"index"`
	Versions  []versionRecord   `json:"versions"`
	// MAC authenticates everything above but the envelopes (auth.go).
	MAC []byte `json:"mac,omitempty"`
}

type versionRecord struct {
	Version   int               `json:"version"`
	CreatedAt time.Time         `json:"created"`
	Envelope  envelope.Envelope `json:"envelope"`
}

// recordMeta is a record without its envelopes: listing 10,000 secrets
// decodes names and dates, not every version's wrapped key and ciphertext.
type recordMeta struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created"`
	UpdatedAt time.Time         `json:"updated"`
	Index     uint64            `json:"index"`
	Versions  []struct {
		Version   int       `json:"version"`
		CreatedAt time.Time `json:"created"`
	} `json:"versions"`
	MAC []byte `json:"mac,omitempty"`
}

func (m *recordMeta) record() *record {
	r := &record{ID: m.ID, Name: m.Name, Labels: m.Labels, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Index: m.Index, MAC: m.MAC}
	for _, v := range m.Versions {
		r.Versions = append(r.Versions, versionRecord{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	return r
}

func (r *record) secret() Secret {
	s := Secret{
		ID: r.ID, Name: r.Name, Labels: r.Labels,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Index: r.Index,
	}
	for _, v := range r.Versions {
		s.Versions = append(s.Versions, Version{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	if n := len(r.Versions); n > 0 {
		s.Current = r.Versions[n-1].Version
	}
	return s
}

// aad binds a version's ciphertext to the secret's ID, name and version
// number: a record or envelope copied onto another fails to decrypt.
func aad(id, name string, version int) []byte {
	return []byte("secretd/v1\x00" + id + "\x00" + name + "\x00" + strconv.Itoa(version))
}

// newID returns 25 lowercase alphanumerics from 128 random bits, the shape of
// swarmkit's identity.NewID, so IDs look the same in `docker secret ls`.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	s := new(big.Int).SetBytes(b[:]).Text(36)
	for len(s) < 25 {
		s = "0" + s
	}
	return s, nil
}
