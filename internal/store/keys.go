package store

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/secretd/secretd/internal/store/envelope"
)

// The key hierarchy has three levels. A root key (the key file, or the
// unlock key with --autolock) wraps the KEK; the KEK wraps one data key per
// secret version. Rotating the unlock key re-wraps one KEK; rotating the KEK
// re-wraps every data key; neither re-encrypts secret data.
const (
	modeKeyFile  = "keyfile"
	modeAutolock = "autolock"

	kekPurpose = "secretd kek wrap v1"
	// kekAAD starts the associated data of a key record of the current
	// format (kekAD): a store whose records all carry a MAC (auth.go),
	// with the record's mode, generation and epoch bound to the wrapped
	// KEK. kekAADv2 marks one that binds neither, kekAADv1 one from before
	// record MACs; both are moved to the current format when opened.
	// Only the root key can move a store from one format to another.
	kekAAD          = "secretd/kek/v3"
	kekAADv2        = "secretd/kek/v2"
	kekAADv1        = "secretd/kek/v1"
	unlockKeyPrefix = "SECDKEY-1-"
)

// The formats of a key record, by the associated data it is sealed with.
const (
	kekFormatV1 = 1 // before record MACs
	kekFormatV2 = 2 // records carry MACs; mode, generation and epoch not bound
	kekFormat   = 3 // the current one
)

// kekAD is the associated data of a current key record: editing its mode
// (key file or autolock), generation (KEK rotations) or epoch (unlock-key
// rotations) makes it fail to open, instead of making hosts reload, lock
// themselves or refuse to start on a lie.
func kekAD(mode string, gen, epoch int) []byte {
	return []byte(kekAAD + "\x00" + mode + "\x00" + strconv.Itoa(gen) + "\x00" + strconv.Itoa(epoch))
}

// kekRecord is the wrapped KEK kept in the meta bucket.
type kekRecord struct {
	Mode       string `json:"mode"`
	Salt       []byte `json:"salt"`
	Wrapped    []byte `json:"wrapped"`
	Generation int    `json:"generation"`
	// Epoch counts unlock-key rotations, so that every host sharing the
	// store sees that the key it was unlocked with no longer opens it.
	Epoch int `json:"epoch,omitempty"`
}

// wrapKEK seals kek under root in a key record of the current format.
func wrapKEK(root []byte, mode string, gen, epoch int, kek *envelope.Key) (kekRecord, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return kekRecord{}, err
	}
	wk, err := envelope.DeriveKey(root, salt, kekPurpose)
	if err != nil {
		return kekRecord{}, err
	}
	defer wk.Wipe()
	raw := kek.Bytes()
	defer clear(raw)
	sealed, err := envelope.Seal(wk, raw, kekAD(mode, gen, epoch))
	if err != nil {
		return kekRecord{}, err
	}
	return kekRecord{Mode: mode, Salt: salt, Wrapped: sealed, Generation: gen, Epoch: epoch}, nil
}

// unwrap opens the KEK with root and says which format the record is of
// (kekFormat, kekFormatV2 or kekFormatV1).
func (r kekRecord) unwrap(root []byte) (kek *envelope.Key, format int, err error) {
	wk, err := envelope.DeriveKey(root, r.Salt, kekPurpose)
	if err != nil {
		return nil, 0, err
	}
	defer wk.Wipe()
	for _, f := range []struct {
		ad     []byte
		format int
	}{
		{kekAD(r.Mode, r.Generation, r.Epoch), kekFormat},
		{[]byte(kekAADv2), kekFormatV2},
		{[]byte(kekAADv1), kekFormatV1},
	} {
		raw, err := envelope.Open(wk, r.Wrapped, f.ad)
		if err != nil {
			continue
		}
		kek, err = envelope.KeyFromBytes(raw)
		clear(raw)
		return kek, f.format, err
	}
	return nil, 0, ErrBadKey
}

func getKEKRecord(tx Tx) (*kekRecord, error) {
	v, err := tx.Get("meta", "kek")
	if err != nil || v == nil {
		return nil, err
	}
	var r kekRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("%w: key record: %v", ErrCorrupt, err)
	}
	return &r, nil
}

func putKEKRecord(tx Tx, r kekRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return tx.Put("meta", "kek", v)
}

// readKeyFile refuses a key file that others can read, as ssh refuses such a
// private key: a copied key file is a copied store. It also refuses a
// symlink (whoever can point it elsewhere chooses the key) and a file owned
// by anyone but root or the daemon's own user, who could swap its content.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("key file %s is a symbolic link: give the file itself (%s)", path, evalOr(path))
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("key file %s is not a regular file", path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("key file %s is owned by uid %d: it must belong to root or to the user secretd runs as (chown root %s)", path, sys.Uid, path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: it must not be readable by group or others (chmod 600 %s)", path, perm, path)
	}
	b := make([]byte, envelope.KeySize+1)
	n, err := io.ReadFull(f, b)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		clear(b)
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if n != envelope.KeySize {
		clear(b)
		return nil, fmt.Errorf("key file %s is %d bytes, want %d: it is not a secretd key file", path, st.Size(), envelope.KeySize)
	}
	return b[:n], nil
}

// evalOr names where a symlink points, or the link itself when it dangles.
func evalOr(path string) string {
	if p, err := filepath.EvalSymlinks(path); err == nil {
		return p
	}
	return path
}

// createKeyFile writes a new random key with O_EXCL so an existing key file
// is never overwritten, and syncs it before the store refers to it.
func createKeyFile(path string) ([]byte, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	k, err := envelope.NewKey()
	if err != nil {
		return nil, err
	}
	defer k.Wipe()
	raw := k.Bytes()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create key file: %w", err)
	}
	_, werr := f.Write(raw)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("create key file %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return raw, nil
}

func newUnlockKey() ([]byte, error) {
	b := make([]byte, envelope.KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// FormatUnlockKey renders an unlock key the way users copy it around.
func formatUnlockKey(b []byte) string {
	return unlockKeyPrefix + base64.RawURLEncoding.EncodeToString(b)
}

func parseUnlockKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, unlockKeyPrefix) {
		return nil, Errorf(ErrBadKey, "invalid unlock key: it must start with %s", unlockKeyPrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(s, unlockKeyPrefix))
	if err != nil || len(b) != envelope.KeySize {
		return nil, Errorf(ErrBadKey, "invalid unlock key: it is malformed")
	}
	return b, nil
}
