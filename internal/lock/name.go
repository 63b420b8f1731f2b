package lock

import (
	"fmt"
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
