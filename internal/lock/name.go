package lock

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest lock name accepted, in bytes.
const MaxNameLen = 256

// ValidateName checks a lock name before it reaches Redis: 1 to MaxNameLen
// bytes of valid UTF-8 without control characters (which would corrupt log
// lines and terminals). It returns an error matching ErrInvalidName.
func ValidateName(name string) error {
	var why string
	switch {
	case name == "":
		why = "name is empty"
	case len(name) > MaxNameLen:
		why = fmt.Sprintf("name is longer than %d bytes", MaxNameLen)
	case !utf8.ValidString(name):
		why = "name is not valid UTF-8"
	default:
		for _, r := range name {
			if unicode.IsControl(r) {
				why = "name contains a control character"
				break
			}
		}
	}
	if why == "" {
		return nil
	}
	return &kindError{ErrInvalidName, fmt.Errorf("%s", why)}
}

// ValidateStrictName checks a name for the service API: ValidateName's rules
// and, in addition, only the characters A-Z a-z 0-9 . _ : @ + -, starting
// with a letter or digit, so names are safe in URLs, logs and shells.
func ValidateStrictName(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return &kindError{ErrInvalidName, errors.New("name must start with a letter or digit")}
		}
		if !alnum && !strings.ContainsRune("._:@+-", rune(c)) {
			return &kindError{ErrInvalidName, fmt.Errorf("name contains %q; allowed are letters, digits and . _ : @ + -", c)}
		}
	}
	return nil
}
