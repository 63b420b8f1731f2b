package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/logging"
)

// FuzzDecodeBody feeds arbitrary bodies to the /v1 request decoder. It must
// never panic, must refuse only with errBadInput, and what it accepts must
// survive a round trip through JSON unchanged (nothing silently dropped).
// Durations it accepts must parse or be refused as bad input.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `{"ttl":"30s","wait":"0s","owner":"me"}`, `{"token":"abc","ttl":"1m"}`,
		`{"fence":17}`, `{"ttl":30}`, `{"ttl":"1e3"}`, `{"tll":"1s"}`, `{"ttl":"30s"`, `[]`, `{}{}`,
		`{"fence":1.5}`, `{"fence":99999999999999999999}`, `{"owner":"\u0000"}`, "\xff",
		// What encoding/json alone lets through.
		`{"ttl":"5s","ttl":"1h"}`, `{"TTL":"1h"}`, `{"Token":"t"}`, ` null `, `{"owner":"caf\xe9"}`,
		`{"owner":"\u202e"}`, "{\"owner\":\"\u202e\"}", `{"owner":é}`, `{"ttl":{"a":[1,{"b":null}]}}`,
		`{"fence":1,"fence":2}`, `{"ttl":null}`, `"x"`, `{"\u0074tl":"1s"}`, `{"ttl":"1s",}`,
		// Modes, limits, fairness and lock-delays.
		`{"mode":"shared","fair":true,"lock_delay":"5s"}`, `{"limit":3,"fair":false,"lock_delay":"0s"}`,
		`{"limit":"3"}`, `{"limit":1.5}`, `{"limit":-1}`, `{"fair":"true"}`, `{"fair":null}`, `{"mode":1}`,
		`{"lock_delay":5000}`, `{"limit":2,"mode":"shared"}`, `{"Limit":2}`, `{"lock_delay":"61s"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&acquireRequest{}, &semaphoreAcquireRequest{}, &extendRequest{}, &releaseRequest{}, &checkRequest{}} {
			err := decodeBody(body, v)
			if err != nil {
				if !errors.Is(err, errBadInput) {
					t.Fatalf("%T from %q: %v is not a bad-input error", v, body, err)
				}
				if strings.Contains(err.Error(), "httpapi.") {
					t.Fatalf("%T from %q: %v names a Go type", v, body, err)
				}
				continue
			}
			if !utf8.Valid(body) {
				t.Fatalf("%T accepted %q, which is not UTF-8", v, body)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if err := decodeBody(b, again); err != nil || !reflect.DeepEqual(v, again) {
				t.Fatalf("%T from %q: round trip gave %+v (%v)", v, body, again, err)
			}
			var durations map[string]*string
			switch a := v.(type) {
			case *acquireRequest:
				durations = map[string]*string{"ttl": a.TTL, "wait": a.Wait, "lock_delay": a.LockDelay}
			case *semaphoreAcquireRequest:
				durations = map[string]*string{"ttl": a.TTL, "wait": a.Wait, "lock_delay": a.LockDelay}
			}
			for field, d := range durations {
				if _, err := parseDuration(field, d, lock.DefaultTTL); err != nil && !errors.Is(err, errBadInput) {
					t.Fatalf("%s %q: %v", field, *d, err)
				}
			}
		}
	})
}

// FuzzBearer feeds arbitrary Authorization headers to bearer. It must never
// panic; a token it accepts is not empty and has no surrounding spaces, and
// the header then starts with the scheme, in any case, and a space; the
// scheme's case never changes the answer.
func FuzzBearer(f *testing.F) {
	for _, seed := range []string{
		"", "Bearer", "Bearer ", "Bearer  ", "Bearer abc", "bearer abc", "BEARER abc ", "Bearer  a b ",
		"Basic dXNlcjpw", "Bearerabc", " Bearer abc", "Bearer\tabc", "Bearer \u00a0abc\u2003", "Bearer \x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, h string) {
		token, ok := bearer(h)
		if !ok {
			if token != "" {
				t.Fatalf("bearer(%q) refused but returned %q", h, token)
			}
			return
		}
		if token == "" || token != strings.TrimSpace(token) {
			t.Fatalf("bearer(%q) accepted %q", h, token)
		}
		if len(h) < 7 || !strings.EqualFold(h[:6], "Bearer") || h[6] != ' ' {
			t.Fatalf("bearer(%q) accepted a header that is not Bearer", h)
		}
		for _, scheme := range []string{"Bearer", "bearer", "BEARER", "bEaReR"} {
			if got, ok := bearer(scheme + h[6:]); !ok || got != token {
				t.Fatalf("bearer(%q) = %q, %v; with scheme %s: %q, %v", h, token, true, scheme, got, ok)
			}
		}
	})
}

// FuzzRequestID checks validRequestID, and the middleware around it: an
// accepted id is 1 to 128 printable ASCII bytes and is echoed; anything
// else is replaced by a fresh 24-hex-digit id.
func FuzzRequestID(f *testing.F) {
	for _, seed := range []string{
		"", "abc", "trace-1_2.3:4/5+6=", "has space", "a\nb", "a\x00", "\x7f", "café", strings.Repeat("x", 128),
		strings.Repeat("x", 129), `"quoted"`, "a,b", "<script>",
	} {
		f.Add(seed)
	}
	r := gin.New()
	r.Use(requestID)
	r.GET("/", func(c *gin.Context) { c.String(http.StatusOK, logging.RequestID(c.Request.Context())) })
	generated := regexp.MustCompile(`^[0-9a-f]{24}$`)
	f.Fuzz(func(t *testing.T, id string) {
		valid := validRequestID(id)
		if valid {
			if len(id) == 0 || len(id) > 128 {
				t.Fatalf("accepted a %d-byte id", len(id))
			}
			for i := 0; i < len(id); i++ {
				if id[i] <= ' ' || id[i] >= 0x7f {
					t.Fatalf("accepted %q with byte %#x", id, id[i])
				}
			}
		}
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Header.Set(requestIDHeader, id) // values are not checked here, unlike on the wire
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		got := rec.Header().Get(requestIDHeader)
		if got != rec.Body.String() {
			t.Fatalf("echoed %q but the context carries %q", got, rec.Body.String())
		}
		if valid && got != id || !valid && !generated.MatchString(got) {
			t.Fatalf("sent %q (valid %v), echoed %q", id, valid, got)
		}
	})
}

// FuzzObjectKeys checks the byte walker decodeBody uses against
// encoding/json's own tokenizer: for any valid JSON in UTF-8, the same keys in the
// same order, or the same verdict that it is not an object.
func FuzzObjectKeys(f *testing.F) {
	for _, seed := range []string{
		`{}`, ` { "a" : 1 , "b":[1,{"c":"}"}], "d\"e":"x\\", "\u0066":{"g":[]} } `, `[]`, `"s"`, `null`,
		`true`, `-1.5e3`, `{"a":"\\\""}`, `{"a":{"b":{"c":[[[]]]}},"z":null}`, "{\"a\"\t:\n1}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) || !utf8.Valid(b) { // decodeBody refuses the others first
			return
		}
		keys, first, ok := objectKeys(b)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%q: %v", b, err)
		}
		if d, isObj := tok.(json.Delim); !isObj || d != '{' {
			if ok || kindOf(first) != tokenKind(tok) {
				t.Fatalf("%q: ok %v, kind %q, want not an object, %q", b, ok, kindOf(first), tokenKind(tok))
			}
			return
		}
		var want []string
		for dec.More() {
			tok, _ := dec.Token()
			want = append(want, tok.(string))
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				t.Fatalf("%q: %v", b, err)
			}
		}
		if !ok || !slices.Equal(keys, want) {
			t.Fatalf("%q: keys %q (ok %v), want %q", b, keys, ok, want)
		}
	})
}

// tokenKind names a first token as kindOf names a first byte.
func tokenKind(tok json.Token) string {
	switch tok.(type) {
	case nil:
		return "null"
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "true or false"
	}
	return "a number"
}
