package apitest

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Seen is a request as it reached the handler behind a Recorder: what a
// lockd behind a proxy would see of it, its trace context included.
type Seen struct {
	Method, Path            string
	Traceparent, Tracestate string
}

// Recorder notes every request that passes it.
type Recorder struct {
	mu   sync.Mutex
	reqs []Seen
}

// All returns the requests noted so far.
func (r *Recorder) All() []Seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Seen(nil), r.reqs...)
}

// Take returns the requests noted so far and forgets them.
func (r *Recorder) Take() []Seen {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.reqs
	r.reqs = nil
	return reqs
}

// RecordFront serves next behind a Recorder on a free port and returns
// its URL.
func RecordFront(t testing.TB, next http.Handler) (string, *Recorder) {
	t.Helper()
	rec := &Recorder{}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, Seen{r.Method, r.URL.Path, r.Header.Get("traceparent"), r.Header.Get("tracestate")})
		rec.mu.Unlock()
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	return hs.URL, rec
}
