package lock

import (
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
	// By rune, not by byte: "café" is refused for its 'é' (U+00E9), which
	// a byte would show as 'Ã', the first byte of its UTF-8 form.
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if i == 0 && !alnum {
			return &kindError{ErrInvalidName, fmt.Errorf("name must start with a letter or digit, not %s", DescribeRune(r))}
		}
		if !alnum && !strings.ContainsRune("._:@+-", r) {
			return &kindError{ErrInvalidName, fmt.Errorf("name contains %s; allowed are the ASCII letters and digits and . _ : @ + -", DescribeRune(r))}
		}
	}
	return nil
}

// DescribeRune shows a character the way its sender typed it, with its
// code point, for error messages: 'é' (U+00E9). A character that would not
// show (a control or format character, a space other than ' ') is given by
// its code point alone.
func DescribeRune(r rune) string {
	if unicode.IsGraphic(r) && !unicode.Is(unicode.Cf, r) && (r == ' ' || !unicode.IsSpace(r)) {
		return fmt.Sprintf("%q (%U)", r, r)
	}
	return fmt.Sprintf("%U", r)
}
