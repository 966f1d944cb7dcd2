// Package source fetches secret values from outside secretd: Swarm
// secret-driver plugins and the built-in shell driver. A secret created with
// a driver stores no data; its value is asked from the source when a
// container mounts it, or polled by a Refresher.
//
// The package knows nothing about the store, the controller or Docker: the
// caller fills a Request, a Provider answers with a Value.
package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSize is Swarm's and the store's limit: a value must be strictly smaller.
const MaxSize = 500 * 1024

// maxDetail bounds how much of a source's own error text an error carries,
// so a chatty command or plugin cannot flood logs and API answers.
const maxDetail = 512

// Kinds of failure, for errors.Is.
var (
	// ErrUnknownDriver means no built-in driver and no plugin has that name.
	ErrUnknownDriver = errors.New("unknown secret driver")
	// ErrInvalidOptions means the driver options cannot work (empty lookup, unknown key).
	ErrInvalidOptions = errors.New("invalid driver options")
	// ErrInvalidValue means the source answered, but with an empty or oversized value.
	ErrInvalidValue = errors.New("invalid value from source")
	// ErrTimeout means the source did not answer before its deadline.
	ErrTimeout = errors.New("source timed out")
	// ErrUnavailable means the source could not be reached or failed to answer.
	ErrUnavailable = errors.New("source unavailable")
)

// Provider fetches the value of secrets kept by one source.
type Provider interface {
	// Fetch returns the current value of the secret req names. The caller
	// owns Value.Data and should Wipe it once written where it goes.
	Fetch(ctx context.Context, req Request) (Value, error)
}

// Validator is implemented by providers that can check a secret's driver
// options when the secret is created, before any Mount needs them.
type Validator interface {
	// Validate reports whether opts can work for this source.
	Validate(ctx context.Context, opts map[string]string) error
}

// Request names the secret to fetch and the container it is fetched for.
type Request struct {
	// SecretID is the store's ID of the secret (SECRET_ID for the shell driver).
	SecretID string
	// SecretName is the secret's name.
	SecretName string
	// SecretLabels are the secret's labels (Swarm sends them to plugins).
	SecretLabels map[string]string
	// Options are the driver options given at create. They may hold
	// credentials: never log them or put them in an error.
	Options map[string]string
	// Container is the container the value is for; zero during refresh.
	Container Container
	// CommandsBy names the host whose root named the commands in Options,
	// as the store recorded it; empty when nobody did (see shell.Trust).
	CommandsBy string
}

// Container is what a source is told about the container asking, the
// standalone counterpart of Swarm's service and task fields.
type Container struct {
	// ID is the container's full ID.
	ID string
	// Name is the container's name, without the leading slash.
	Name string
	// Image is the image the container was created from, as given.
	Image string
	// Hostname is the container's hostname.
	Hostname string
	// Labels are the container's labels.
	Labels map[string]string
}

// Value is a secret's value as a source returned it.
type Value struct {
	// Data is the plaintext; Wipe it when done.
	Data []byte
	// DoNotReuse says the value is for this one container only: it must not
	// be cached, shared with another container or kept as a version.
	DoNotReuse bool
}

// Wipe zeroes the value's bytes.
func (v *Value) Wipe() {
	clear(v.Data)
	v.Data = nil
}

// Error is a failure to get a secret's value from its source. It names the
// secret and the source and carries the source's own text, never a value.
type Error struct {
	// Secret is the secret's name.
	Secret string
	// Source says which source failed: "shell driver", "plugin \"vault\"".
	Source string
	// Err is the cause, wrapping one of the Err* kinds.
	Err error
}

// Error says which secret, which source, and why.
func (e *Error) Error() string {
	return fmt.Sprintf("secret '%s': %s: %v", e.Secret, e.Source, e.Err)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// CheckValue reports whether data is a value the store would accept: at
// least one byte and less than MaxSize.
func CheckValue(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: the source returned an empty value", ErrInvalidValue)
	}
	if len(data) >= MaxSize {
		return fmt.Errorf("%w: the source returned %d bytes or more, the limit is less than %d bytes (500 KiB)", ErrInvalidValue, MaxSize, MaxSize)
	}
	return nil
}

// Detail makes a source's own error text fit for an error message: control
// characters become spaces, runs of space collapse, and it is cut to a few
// hundred bytes. Any occurrence of a secret (when at least 4 bytes long)
// is replaced first, for commands that echo what they read or print.
func Detail(text []byte, secrets ...[]byte) string {
	for _, secret := range secrets {
		if len(secret) >= 4 {
			text = bytes.ReplaceAll(text, secret, []byte("[redacted]"))
		}
	}
	s := strings.ToValidUTF8(string(text), "?")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxDetail {
		cut := maxDetail
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}

// ReadLimited reads r to EOF, keeping at most max bytes; over reports that r
// had more. Buffers outgrown on the way are zeroed, so no copy of a value is
// left behind in freed memory.
func ReadLimited(r io.Reader, max int) (data []byte, over bool, err error) {
	buf := make([]byte, 0, min(4096, max+1))
	for {
		if len(buf) == cap(buf) {
			nb := make([]byte, len(buf), min(2*cap(buf), max+1))
			copy(nb, buf)
			clear(buf)
			buf = nb
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > max {
			return buf, true, nil
		}
		if rerr == io.EOF {
			return buf, false, nil
		}
		if rerr != nil {
			return buf, false, rerr
		}
	}
}

// OptionKeys lists the keys of opts, sorted, for messages that must name
// options without showing their values.
func OptionKeys(opts map[string]string) []string {
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
