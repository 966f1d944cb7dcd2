package store

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxSecretSize is Swarm's limit: secret data must be strictly smaller.
const MaxSecretSize = 500 * 1024

// MaxNameLength is the longest secret name Swarm accepts.
const MaxNameLength = 64

// Label limits are ours (Swarm has none worth naming); they keep one record
// small enough that listing 10,000 secrets stays cheap.
const (
	maxLabels        = 64
	maxLabelKeyLen   = 256
	maxLabelValueLen = 4096
)

// nameRE is swarmkit's isValidConfigOrSecretName, so names move between
// Swarm and secretd unchanged.
var nameRE = regexp.MustCompile(`^[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?$`)

// ValidateName reports whether name is a valid secret or config name, with
// Swarm's message.
func ValidateName(name string) error {
	if name == "" {
		return Errorf(ErrInvalid, "name must be provided")
	}
	if len(name) > MaxNameLength || !nameRE.MatchString(name) {
		return Errorf(ErrInvalid, "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]")
	}
	return nil
}

// ValidateData reports whether secret data fits Swarm's size rule.
func ValidateData(data []byte) error { return KindSecret.ValidateData(data) }

// ValidateData reports whether data of kind k fits Swarm's size rule, with
// Swarm's message.
func (k Kind) ValidateData(data []byte) error {
	if len(data) < 1 || len(data) >= k.MaxSize() {
		return Errorf(ErrInvalid, "%s data must be larger than 0 and less than %d bytes", k, k.MaxSize())
	}
	return nil
}

// ValidateLabels refuses labels that would be unprintable in `secret ls` or
// that could smuggle layout into tables and logs.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return Errorf(ErrInvalid, "too many labels (%d): at most %d allowed", len(labels), maxLabels)
	}
	for k, v := range labels {
		switch {
		case k == "":
			return Errorf(ErrInvalid, "label key must not be empty")
		case len(k) > maxLabelKeyLen:
			return Errorf(ErrInvalid, "label key %q is longer than %d bytes", truncate(k), maxLabelKeyLen)
		case strings.ContainsRune(k, '=') || hasSpaceOrControl(k):
			return Errorf(ErrInvalid, "label key %q must not contain '=', spaces or control characters", truncate(k))
		case !utf8.ValidString(k) || !utf8.ValidString(v):
			return Errorf(ErrInvalid, "label %q is not valid UTF-8", truncate(k))
		case len(v) > maxLabelValueLen:
			return Errorf(ErrInvalid, "value of label %q is longer than %d bytes", k, maxLabelValueLen)
		case hasControl(v):
			return Errorf(ErrInvalid, "value of label %q must not contain control characters", k)
		}
	}
	return nil
}

func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}
