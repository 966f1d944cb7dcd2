package store

import (
	"crypto/rand"
	"math/big"
	"slices"
	"strconv"
	"time"

	"github.com/secretd/secretd/internal/store/envelope"
)

// Secret is the metadata of a secret or a config (Kind says which), as the
// API shows it. It never carries data.
type Secret struct {
	// Kind is KindSecret or KindConfig.
	Kind      Kind
	ID        string
	Name      string
	Labels    map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
	// Index changes on every write, as Swarm's Version.Index does.
	Index uint64
	// Current is the version a container gets when it does not pin one.
	Current int
	// Versions are the versions still kept, oldest first. A secret with a
	// Source may have none: its value is fetched at each Mount.
	Versions []Version
	// Source is set for a secret whose value comes from a secret driver.
	Source *Source
	// Template names the template driver (TemplateGolang) of a secret or
	// config whose data is a template, rendered for each container.
	Template string
}

// TemplateGolang is the one template driver, Swarm's: Go's text/template.
const TemplateGolang = "golang"

// Source says where a driver secret's value comes from. It never carries
// the options' values, which may hold credentials: see SourceOptions.
type Source struct {
	// Driver is the driver's name: "shell" or a plugin's.
	Driver string
	// OptionKeys are the names of the driver options, sorted.
	OptionKeys []string
	// Cache keeps the last value fetched as a version, served when the
	// source fails.
	Cache bool
	// Refresh is how often the source is polled; zero means never.
	Refresh time.Duration
	// Stored says secretd put the value into the source at create (the
	// shell driver's store command), so secret rm removes it there too.
	Stored bool
	// CommandsBy is the host whose root named the commands in the options.
	CommandsBy string
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
	// Kind is "" for a secret (as every record from before configs) or
	// "config" (Kind.recordKind).
	Kind      string            `json:"kind,omitempty"`
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created"`
	UpdatedAt time.Time         `json:"updated"`
	Index     uint64            `json:"index"`
	Versions  []versionRecord   `json:"versions"`
	Source    *sourceRecord     `json:"source,omitempty"`
	// Template is the template driver of a templated record.
	Template string `json:"template,omitempty"`
	// MAC authenticates everything above but the envelopes (auth.go).
	MAC []byte `json:"mac,omitempty"`
}

// sourceRecord is a driver secret's source. The option values are sealed
// like data; their keys stay in the clear for `ls` while locked.
type sourceRecord struct {
	Driver  string             `json:"driver"`
	Keys    []string           `json:"keys,omitempty"`
	Options *envelope.Envelope `json:"options,omitempty"`
	Cache   bool               `json:"cache,omitempty"`
	Refresh time.Duration      `json:"refresh,omitempty"`
	Stored  bool               `json:"stored,omitempty"`
	// CommandsBy is the host whose root named the options' commands.
	CommandsBy string `json:"commands_by,omitempty"`
}

// valid reports whether r holds what every record must: a version, or a
// source to fetch one from.
func (r *record) valid() bool { return len(r.Versions) > 0 || r.Source != nil }

// current is the number of r's newest version, 0 when it has none.
func (r *record) current() int {
	if n := len(r.Versions); n > 0 {
		return r.Versions[n-1].Version
	}
	return 0
}

type versionRecord struct {
	Version   int               `json:"version"`
	CreatedAt time.Time         `json:"created"`
	Envelope  envelope.Envelope `json:"envelope"`
}

// recordMeta is a record without its envelopes: listing 10,000 secrets
// decodes names and dates, not every version's wrapped key and ciphertext.
type recordMeta struct {
	Kind      string            `json:"kind,omitempty"`
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
	Source   *sourceRecord `json:"source,omitempty"`
	Template string        `json:"template,omitempty"`
	MAC      []byte        `json:"mac,omitempty"`
}

func (m *recordMeta) record() *record {
	r := &record{Kind: m.Kind, ID: m.ID, Name: m.Name, Labels: m.Labels, CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt, Index: m.Index, Source: m.Source, Template: m.Template, MAC: m.MAC}
	for _, v := range m.Versions {
		r.Versions = append(r.Versions, versionRecord{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	return r
}

func (r *record) secret() Secret {
	s := Secret{
		Kind: r.kind(), ID: r.ID, Name: r.Name, Labels: r.Labels,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, Index: r.Index,
		Template: r.Template,
	}
	for _, v := range r.Versions {
		s.Versions = append(s.Versions, Version{Version: v.Version, CreatedAt: v.CreatedAt})
	}
	s.Current = r.current()
	if r.Source != nil {
		s.Source = &Source{Driver: r.Source.Driver, OptionKeys: slices.Clone(r.Source.Keys), Cache: r.Source.Cache, Refresh: r.Source.Refresh, Stored: r.Source.Stored, CommandsBy: r.Source.CommandsBy}
	}
	return s
}

// kind is the kind r holds.
func (r *record) kind() Kind { return kindOf(r.Kind) }

// aad binds a version's ciphertext to the record's kind, ID, name and
// version number: a record or envelope copied onto another fails to
// decrypt. A secret's AAD names no kind, as before configs existed.
func aad(kind, id, name string, version int) []byte {
	prefix := "secretd/v1\x00"
	if kind != "" {
		prefix = "secretd/v1/" + kind + "\x00"
	}
	return []byte(prefix + id + "\x00" + name + "\x00" + strconv.Itoa(version))
}

// optionsAAD binds a driver secret's sealed options to its ID and name.
func optionsAAD(id, name string) []byte {
	return []byte("secretd/v1\x00" + id + "\x00" + name + "\x00source-options")
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
