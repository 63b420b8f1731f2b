package safety

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

// Store is the resource the locks protect: an HTTP server in the test
// process, so client processes can write to it too. Per lock name it keeps
// the highest fence it has accepted and a counter, and it logs every write
// attempt with the store's own decision time.
//
// A fenced store accepts an access only if its fence is at least the highest
// seen: equal fences are the same grant writing again. With fencing off it
// accepts everything, which is how a scenario shows that the checkers catch
// what fencing prevents.
type Store struct {
	fencing bool
	clock   Clock
	srv     *httptest.Server

	mu      sync.Mutex
	highest map[string]int64
	counter map[string]int64
	log     []check.Write
}

// writeRequest is the body of POST /write and POST /increment.
type writeRequest struct {
	Client int    `json:"client"`
	Lock   string `json:"lock"`
	Fence  int64  `json:"fence"`
	Token  string `json:"token"`
	Value  int64  `json:"value"` // POST /write only
}

type writeResponse struct {
	Accepted bool `json:"accepted"`
}

// NewStore starts the store's HTTP server; Close stops it.
func NewStore(clock Clock, fencing bool) *Store {
	s := &Store{fencing: fencing, clock: clock, highest: map[string]int64{}, counter: map[string]int64{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /write", s.handleWrite)
	mux.HandleFunc("POST /increment", s.handleIncrement)
	s.srv = httptest.NewServer(mux)
	return s
}

// URL is the store's base URL.
func (s *Store) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Store) Close() { s.srv.Close() }

// admit decides one access under s.mu: with fencing, a fence below the
// highest is refused and an accepted one raises the highest.
func (s *Store) admit(lock string, fence int64) bool {
	if !s.fencing {
		return true
	}
	if fence < s.highest[lock] {
		return false
	}
	s.highest[lock] = fence
	return true
}

func (s *Store) handleWrite(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeWrite(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	ok = s.admit(req.Lock, req.Fence)
	s.logAccess(req, check.KindWrite, req.Value, ok)
	s.mu.Unlock()
	_ = json.NewEncoder(w).Encode(writeResponse{Accepted: ok})
}

// handleIncrement is a read-modify-write: read the counter, take a little
// time, write what was read plus one. Both steps carry the fence, as any
// access to a fenced resource must: the read raises the highest fence like
// a write, so a newer holder's read locks out an older holder's write that
// would otherwise overwrite the newer one's increment. The read is logged as
// its own entry (Kind "read") so the store checker sees why a later access
// was refused. Without the lock (or without fencing) two increments
// interleave and one is lost.
func (s *Store) handleIncrement(w http.ResponseWriter, r *http.Request) {
	req, ok := decodeWrite(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	ok = s.admit(req.Lock, req.Fence)
	read := s.counter[req.Lock]
	s.logAccess(req, kindRead, read, ok)
	s.mu.Unlock()
	if ok {
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		s.mu.Lock()
		ok = s.admit(req.Lock, req.Fence)
		if ok {
			s.counter[req.Lock] = read + 1
		}
		s.logAccess(req, check.KindIncrement, read+1, ok)
		s.mu.Unlock()
	}
	_ = json.NewEncoder(w).Encode(writeResponse{Accepted: ok})
}

// decodeWrite reads a request body, answering 400 itself when it is bad.
func decodeWrite(w http.ResponseWriter, r *http.Request) (writeRequest, bool) {
	var req writeRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return req, false
	}
	return req, true
}

// kindRead marks the read step of an increment in the store's log.
const kindRead = "read"

// logAccess records one decision; the caller holds s.mu, so At is the moment
// of the decision.
func (s *Store) logAccess(req writeRequest, kind string, value int64, ok bool) {
	s.log = append(s.log, check.Write{Client: req.Client, Lock: req.Lock, Fence: req.Fence, Token: req.Token,
		At: s.clock.Now(), Accepted: ok, Kind: kind, Value: value})
}

// Log returns a copy of every write attempt so far.
func (s *Store) Log() []check.Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]check.Write(nil), s.log...)
}

// Counters returns a copy of the final counter per lock name.
func (s *Store) Counters() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]int64, len(s.counter))
	for k, v := range s.counter {
		m[k] = v
	}
	return m
}
