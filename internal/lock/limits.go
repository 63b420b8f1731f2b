package lock

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits of the fenced API (TryAcquire, AcquireWait, Renew). The longest TTL
// (Config.MaxTTL, at most MaxTTL) also bounds how long a restarted Redis
// node must stay out of quorums, so it is kept modest.
const (
	MinTTL      = 100 * time.Millisecond
	MaxTTL      = time.Hour
	DefaultTTL  = 30 * time.Second
	MaxWait     = 5 * time.Minute
	MaxOwnerLen = 256 // bytes
	MaxTokenLen = 256 // bytes; real tokens are 24
)

func invalid(format string, args ...any) error {
	return &kindError{ErrInvalidArgument, fmt.Errorf(format, args...)}
}

func (m *Manager) validateTTL(ttl time.Duration) error {
	if ttl < MinTTL || ttl > m.maxTTL {
		return invalid("ttl %v is outside %v to %v", ttl, MinTTL, m.maxTTL)
	}
	return nil
}

func validateWait(wait time.Duration) error {
	if wait < 0 || wait > MaxWait {
		return invalid("wait %v is outside 0s to %v", wait, MaxWait)
	}
	return nil
}

// validateOwner keeps owners printable: they are shown to other callers and
// written to logs. Invisible format characters (Unicode category Cf: the
// bidirectional overrides U+202A–U+202E and U+2066–U+2069, zero-width
// characters, U+FEFF) are refused too: an owner holding U+202E shows in a
// dashboard or a terminal as different text from what it is.
func validateOwner(owner string) error {
	if len(owner) > MaxOwnerLen {
		return invalid("owner is longer than %d bytes", MaxOwnerLen)
	}
	if !utf8.ValidString(owner) {
		return invalid("owner is not valid UTF-8")
	}
	for _, r := range owner {
		switch {
		case unicode.IsControl(r):
			return invalid("owner contains the control character %s", DescribeRune(r))
		case unicode.Is(unicode.Cf, r):
			return invalid("owner contains the invisible formatting character %s (such as a bidirectional override)", DescribeRune(r))
		}
	}
	return nil
}

// validateToken rejects what cannot be a token before it reaches Redis. Any
// other wrong token is simply not the holder.
func validateToken(token string) error {
	switch {
	case token == "":
		return invalid("token is required")
	case len(token) > MaxTokenLen:
		return invalid("token is longer than %d bytes", MaxTokenLen)
	}
	return nil
}

// newToken returns 128 random bits in URL-safe base64, so a token can travel
// in JSON, URLs and shell variables unescaped. (redsync's default value uses
// standard base64, with + / and =.) Its 22 characters leave a grant's value
// within the 44 bytes Redis stores in one allocation (common.lua).
func newToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", errors.Join(errors.New("lock: no randomness for a token"), err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
