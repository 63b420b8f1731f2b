package httpapi

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
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
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&acquireRequest{}, &extendRequest{}, &releaseRequest{}, &checkRequest{}} {
			err := decodeBody(body, v)
			if err != nil {
				if !errors.Is(err, errBadInput) {
					t.Fatalf("%T from %q: %v is not a bad-input error", v, body, err)
				}
				continue
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			if err := decodeBody(b, again); err != nil || !reflect.DeepEqual(v, again) {
				t.Fatalf("%T from %q: round trip gave %+v (%v)", v, body, again, err)
			}
			if a, ok := v.(*acquireRequest); ok {
				for field, d := range map[string]*string{"ttl": a.TTL, "wait": a.Wait} {
					if _, err := parseDuration(field, d, lock.DefaultTTL); err != nil && !errors.Is(err, errBadInput) {
						t.Fatalf("%s %q: %v", field, *d, err)
					}
				}
			}
		}
	})
}
