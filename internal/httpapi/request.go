package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
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
// (form, text), are read as JSON; any other declared type is refused.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && r.ContentLength != 0 {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !acceptedTypes[mt] {
			return fmt.Errorf("%w: send the body as application/json", errMediaType)
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

// decodeBody decodes one JSON object into v, strictly: unknown fields,
// wrong types and anything after the object are errors, so a typo such as
// "tll" is refused instead of silently ignored. An empty body leaves v as
// it is, which gives every optional field its default.
func decodeBody(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badInput("the body is not a valid JSON request: %v", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badInput("the body has more after its JSON object")
	}
	return nil
}

// jsonProblem rewords encoding/json's errors for an API caller: which field,
// and what was wrong with it, without Go type names.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return fmt.Sprintf("field %q must not be a JSON %s", te.Field, te.Value)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "it ends too early"
	}
	return err.Error()
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
		TTL   *string `json:"ttl"`
		Wait  *string `json:"wait"`
		Owner string  `json:"owner"`
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
