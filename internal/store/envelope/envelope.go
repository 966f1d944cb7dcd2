// Package envelope holds secretd's envelope encryption: every secret version
// is sealed with a fresh data key, and data keys are wrapped by a
// key-encryption key (KEK). Rotating the KEK re-wraps the small data keys and
// never touches the ciphertext.
package envelope

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"
)

// KeySize is the size of every key in the hierarchy (XChaCha20-Poly1305).
const KeySize = chacha20poly1305.KeySize

// ErrAuth is returned when a ciphertext, a wrapped key or its additional data
// does not authenticate: the bytes were tampered with, moved to another
// record, or the key is wrong. Nothing is ever returned as data in that case.
var ErrAuth = errors.New("message authentication failed")

// Key is a 256-bit symmetric key. It lives behind a pointer so that Wipe
// clears the one copy instead of a copy of it.
type Key struct{ b [KeySize]byte }

// NewKey returns a random key.
func NewKey() (*Key, error) {
	k := &Key{}
	if _, err := io.ReadFull(rand.Reader, k.b[:]); err != nil {
		return nil, fmt.Errorf("read random key: %w", err)
	}
	return k, nil
}

// KeyFromBytes copies a raw key; the caller should wipe its own copy.
func KeyFromBytes(b []byte) (*Key, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("key is %d bytes, want %d", len(b), KeySize)
	}
	k := &Key{}
	copy(k.b[:], b)
	return k, nil
}

// DeriveKey stretches high-entropy input keying material (a key file, an
// unlock key) into a wrapping key with HKDF-SHA256. It is not a password
// hash: secretd's unlock keys are random 256-bit values, never passwords.
func DeriveKey(ikm, salt []byte, purpose string) (*Key, error) {
	k := &Key{}
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, salt, []byte(purpose)), k.b[:]); err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return k, nil
}

// Bytes exposes the raw key for writing a key file; wipe the copy after use.
func (k *Key) Bytes() []byte {
	out := make([]byte, KeySize)
	copy(out, k.b[:])
	return out
}

// Wipe zeroes the key in place. Go may have copied it during GC moves of
// other objects, but the Key itself is never copied by this package.
func (k *Key) Wipe() {
	if k == nil {
		return
	}
	clear(k.b[:])
}

// Seal encrypts plaintext under key with a random nonce, binding aad.
// The result is nonce || ciphertext || tag.
func Seal(key *Key, plaintext, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key.b[:])
	if err != nil {
		return nil, err
	}
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := io.ReadFull(rand.Reader, out); err != nil {
		return nil, fmt.Errorf("read random nonce: %w", err)
	}
	return aead.Seal(out, out, plaintext, aad), nil
}

// Open reverses Seal. Any mismatch of key, bytes or aad returns ErrAuth.
func Open(key *Key, sealed, aad []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key.b[:])
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrAuth
	}
	nonce, ct := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	pt, err := aead.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, ErrAuth
	}
	return pt, nil
}

// Envelope is one sealed value: its data key wrapped by the KEK, and the
// value sealed by that data key.
type Envelope struct {
	WrappedKey []byte `json:"key"`
	Ciphertext []byte `json:"data"`
}

// dekAAD keeps a wrapped data key from being accepted as a ciphertext of the
// same record, and the other way round.
func dekAAD(aad []byte) []byte { return append(append([]byte{}, aad...), "\x00dek"...) }

// SealEnvelope encrypts plaintext with a fresh data key wrapped by kek.
func SealEnvelope(kek *Key, plaintext, aad []byte) (Envelope, error) {
	dek, err := NewKey()
	if err != nil {
		return Envelope{}, err
	}
	defer dek.Wipe()
	ct, err := Seal(dek, plaintext, aad)
	if err != nil {
		return Envelope{}, err
	}
	wk, err := Seal(kek, dek.b[:], dekAAD(aad))
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{WrappedKey: wk, Ciphertext: ct}, nil
}

// OpenEnvelope unwraps the data key with kek and decrypts the value.
func OpenEnvelope(kek *Key, env Envelope, aad []byte) ([]byte, error) {
	dek, err := unwrap(kek, env.WrappedKey, aad)
	if err != nil {
		return nil, err
	}
	defer dek.Wipe()
	return Open(dek, env.Ciphertext, aad)
}

// Rewrap moves an envelope from oldKEK to newKEK without decrypting the value.
func Rewrap(oldKEK, newKEK *Key, env Envelope, aad []byte) (Envelope, error) {
	dek, err := unwrap(oldKEK, env.WrappedKey, aad)
	if err != nil {
		return Envelope{}, err
	}
	defer dek.Wipe()
	wk, err := Seal(newKEK, dek.b[:], dekAAD(aad))
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{WrappedKey: wk, Ciphertext: env.Ciphertext}, nil
}

func unwrap(kek *Key, wrapped, aad []byte) (*Key, error) {
	raw, err := Open(kek, wrapped, dekAAD(aad))
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	return KeyFromBytes(raw)
}

// MAC returns HMAC-SHA256 of msg under key.
func MAC(key *Key, msg []byte) []byte {
	h := hmac.New(sha256.New, key.b[:])
	h.Write(msg)
	return h.Sum(nil)
}

// VerifyMAC reports, in constant time, whether tag is MAC(key, msg).
func VerifyMAC(key *Key, msg, tag []byte) bool {
	return hmac.Equal(MAC(key, msg), tag)
}
