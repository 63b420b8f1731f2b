package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// defaultMaxBody bounds a /v1 request body unless configured. Real bodies
// are under 1 KiB.
const defaultMaxBody = 64 << 10

// errBadInput and errTooLarge are the HTTP layer's own input errors; the
// domain's are lock.ErrInvalidName and lock.ErrInvalidArgument.
var (
	errBadInput  = errors.New("bad request")
	errTooLarge  = errors.New("payload too large")
	errMediaType = errors.New("unsupported media type")
)

// acceptedTypes are the Content-Types a /v1 body may declare. curl -d sends
// application/x-www-form-urlencoded, and the README's examples use it.
var acceptedTypes = map[string]bool{
	"application/json": true, "application/x-www-form-urlencoded": true, "text/plain": true,
}

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadInput, fmt.Sprintf(format, args...))
}

// readBody reads a /v1 request body, at most limit bytes, and decodes it
// with decodeBody. JSON, and the types curl -d and plain clients send
// (form, text), are read as JSON; any other declared type is refused, and
// so is a charset other than UTF-8 (JSON is UTF-8, and a body declared
// latin1 would be read as something else than what was meant).
func readBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && r.ContentLength != 0 {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || !acceptedTypes[mt] {
			return fmt.Errorf("%w: send the body as application/json", errMediaType)
		}
		if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
			return badInput("the body must be UTF-8, but its Content-Type says charset=%s", strconv.Quote(truncate(cs, 32)))
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return fmt.Errorf("%w: the body is larger than %d bytes", errTooLarge, limit)
	}
	if err != nil {
		// Not err's text: a read error names this server's own address
		// ("read tcp 10.0.0.7:8080->...: i/o timeout").
		return badInput("the body could not be read: it was cut short or arrived too slowly")
	}
	return decodeBody(b, v)
}

// decodeBody decodes one JSON object into v, a pointer to one of the
// request structs below, strictly. encoding/json alone is lenient where a
// lock API must not be: the last of two equal keys wins ({"ttl":"5s",
// "ttl":"1h"} is an hour), names match in any case ("TTL" is ttl), a null
// body is accepted, and invalid UTF-8 becomes U+FFFD. So the body must be
// UTF-8 and valid JSON, a pass over its tokens checks its shape (one object,
// each field known by its exact name and given once), then encoding/json
// fills v, refusing wrong types. An empty body leaves v as it is, which
// gives every optional field its default; so does a field whose value is
// null.
func decodeBody(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if !utf8.Valid(b) {
		return badInput("the body is not valid UTF-8")
	}
	// The syntax first, in one pass that knows where an error is:
	// json.Decoder.Token's offsets are not exact.
	if !json.Valid(b) { // a scan that allocates nothing; the error only when there is one
		var syntax any
		err := json.Unmarshal(b, &syntax)
		return badInput("%s", syntaxProblem(b, err))
	}
	fields := jsonFields(v)
	hint, _ := v.(misplacer)
	if err := checkShape(b, fields, hint); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badInput("%s", jsonProblem(err, fields))
	}
	return nil
}

// checkShape is decodeBody's shape check: b, valid JSON, must be one JSON
// object whose keys are among fields, spelled exactly so, each at most
// once. hint, when not nil, names where an unknown field belongs.
func checkShape(b []byte, fields map[string]string, hint misplacer) error {
	keys, first, ok := objectKeys(b)
	if !ok {
		return badInput("the body must be a JSON object with the fields %s, not %s", fieldList(fields), kindOf(first))
	}
	for i, key := range keys {
		shown := strconv.Quote(truncate(key, 32))
		switch _, known := fields[key]; {
		case slices.Contains(keys[:i], key):
			return badInput("field %s appears more than once; send each field once", shown)
		case !known:
			if hint != nil {
				if msg := hint.misplaced(key); msg != "" {
					return badInput("%s", msg)
				}
			}
			for name := range fields {
				if strings.EqualFold(name, key) {
					return badInput("field %s is not known; field names are case-sensitive: did you mean %q?", shown, name)
				}
			}
			return badInput("field %s is not known; the fields are %s", shown, fieldList(fields))
		}
	}
	return nil
}

// objectKeys returns the keys of b, valid JSON (json.Valid), in order. It
// walks the bytes itself, skipping values without decoding them: what
// json.Decoder.Token did here cost an allocation per token on every
// request. ok is false when b is not an object; first is then its first
// byte, which tells what it is.
func objectKeys(b []byte) (keys []string, first byte, ok bool) {
	i := skipSpace(b, 0)
	if b[i] != '{' {
		return nil, b[i], false
	}
	for i = skipSpace(b, i+1); b[i] != '}'; {
		end := stringEnd(b, i)
		key := b[i+1 : end-1]
		if bytes.IndexByte(key, '\\') < 0 {
			keys = append(keys, string(key))
		} else {
			var k string
			_ = json.Unmarshal(b[i:end], &k) // valid JSON: a string
			keys = append(keys, k)
		}
		i = skipSpace(b, end) // at the colon
		i = valueEnd(b, skipSpace(b, i+1))
		if i = skipSpace(b, i); b[i] == ',' {
			i = skipSpace(b, i+1)
		}
	}
	return keys, '{', true
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just after the string that starts at i.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++ // the escaped byte
		case '"':
			return i + 1
		}
	}
	return i
}

// valueEnd returns the index just after the value that starts at i.
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(b) && !strings.ContainsRune(",}] \t\r\n", rune(b[i])) {
		i++ // a number, true, false or null
	}
	return i
}

// kindOf names a JSON value by its first byte, in plain words.
func kindOf(first byte) string {
	switch first {
	case 'n':
		return "null"
	case '[':
		return "an array"
	case '{':
		return "an object"
	case '"':
		return "a string"
	case 't', 'f':
		return "true or false"
	}
	return "a number"
}

// jsonFields maps the JSON names of v's fields (v points to a struct) to
// what each must be, in plain words. Callers only read the map: it is
// made once per type, since every request body would otherwise pay for
// the reflection.
func jsonFields(v any) map[string]string {
	t := reflect.TypeOf(v).Elem()
	if m, ok := fieldsByType.Load(t); ok {
		return m.(map[string]string)
	}
	m := fieldsOf(t)
	fieldsByType.Store(t, m)
	return m
}

// fieldsByType caches jsonFields: request struct type to its fields.
var fieldsByType sync.Map

func fieldsOf(t reflect.Type) map[string]string {
	out := make(map[string]string, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch ft.Kind() {
		case reflect.String:
			out[name] = "a string"
		case reflect.Int64:
			out[name] = "a whole number"
		case reflect.Bool:
			out[name] = "true or false"
		default:
			out[name] = "a " + ft.Kind().String()
		}
	}
	return out
}

// fieldList is fields' names in order, for messages.
func fieldList(fields map[string]string) string {
	names := slices.Sorted(maps.Keys(fields))
	return strings.Join(names, ", ")
}

// syntaxProblem rewords a JSON syntax error. encoding/json names the
// offending byte, so a character outside ASCII ('é') shows as the first
// byte of its UTF-8 form ('Ã'); this names the character.
func syntaxProblem(b []byte, err error) string {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se) && strings.Contains(se.Error(), "end of JSON input"):
		return "the body is not valid JSON: it ends too early"
	case errors.As(err, &se) && strings.Contains(se.Error(), "after top-level value"):
		return "the body has more after its JSON object"
	case errors.As(err, &se):
		// Offset counts the bytes read, the offending one included.
		off := int(se.Offset) - 1
		if off >= 0 && off < len(b) {
			r, _ := utf8.DecodeRune(b[off:])
			return fmt.Sprintf("the body is not valid JSON: unexpected %s at byte %d", lock.DescribeRune(r), off+1)
		}
		return "the body is not valid JSON"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the body is not valid JSON: it ends too early"
	}
	return "the body is not valid JSON"
}

// jsonProblem rewords encoding/json's errors from the second pass for an
// API caller: which field, and what it must be, without Go type names
// (encoding/json's own text names httpapi.acquireRequest).
func jsonProblem(err error, fields map[string]string) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want, ok := fields[te.Field]
		if !ok {
			return "the body must be a JSON object with the fields " + fieldList(fields)
		}
		got, value, _ := strings.Cut(te.Value, " ") // "number 1.5"
		switch {
		case value != "" && strings.ContainsAny(value, ".eE"):
			return fmt.Sprintf("field %q must be %s; %s is not", te.Field, want, truncate(value, 32))
		case value != "":
			return fmt.Sprintf("field %q is too large: %s", te.Field, truncate(value, 32))
		}
		if got == "bool" {
			got = "true or false"
		} else {
			got = "a JSON " + got
		}
		return fmt.Sprintf("field %q must be %s, not %s", te.Field, want, got)
	}
	return syntaxProblem(nil, err)
}

// parseDuration reads field, a string in Go's duration syntax ("30s",
// "1m30s", "250ms"), or def when it was absent. JSON numbers never get
// here (the field is a string): a bare 30 could mean seconds or
// milliseconds.
func parseDuration(field string, s *string, def time.Duration) (time.Duration, error) {
	if s == nil {
		return def, nil
	}
	d, err := time.ParseDuration(*s)
	if err != nil {
		return 0, badInput("%s %s is not a duration such as \"30s\" or \"250ms\"", field, strconv.Quote(truncate(*s, 32)))
	}
	return d, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Request bodies of /v1. Pointers tell an absent field from a zero one.
type (
	acquireRequest struct {
		TTL       *string `json:"ttl"`
		Wait      *string `json:"wait"`
		Owner     string  `json:"owner"`
		Mode      *string `json:"mode"`
		Fair      bool    `json:"fair"`
		LockDelay *string `json:"lock_delay"`
	}
	// semaphoreAcquireRequest is acquireRequest for a semaphore: a limit
	// (required) rather than a mode.
	semaphoreAcquireRequest struct {
		Limit     *int64  `json:"limit"`
		TTL       *string `json:"ttl"`
		Wait      *string `json:"wait"`
		Owner     string  `json:"owner"`
		Fair      bool    `json:"fair"`
		LockDelay *string `json:"lock_delay"`
	}
	extendRequest struct {
		Token string  `json:"token"`
		TTL   *string `json:"ttl"`
	}
	releaseRequest struct {
		Token string `json:"token"`
	}
	checkRequest struct {
		Fence *int64 `json:"fence"`
	}
)

// misplacer is a request that knows fields of another kind of request, so
// that sending one there is answered with where it belongs rather than
// with the list of known fields.
type misplacer interface {
	misplaced(field string) string
}

func (*acquireRequest) misplaced(field string) string {
	if field == "limit" {
		return "field \"limit\" is for semaphores (POST /v1/semaphores/{name}/acquire); a lock takes a mode"
	}
	return ""
}

func (*semaphoreAcquireRequest) misplaced(field string) string {
	if field == "mode" {
		return "field \"mode\" is for locks (POST /v1/locks/{name}/acquire); a semaphore takes a limit"
	}
	return ""
}
