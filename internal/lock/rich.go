package lock

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// spec is a request as the scripts read it in ARGV[10] (scripts/rich.lua).
type spec struct {
	kind  Kind
	mode  Mode
	limit int
	delay time.Duration
	id    string // the waiter's id in a fair queue ("" outside one)
}

// queueLiveness is how long a fair waiter's place in a queue lasts unless
// its replica renews it, which it does every queueLook: a waiter or a
// replica that vanished is skipped about a second later, not at the end of
// its wait.
const (
	queueLiveness = time.Second
	queueLook     = 250 * time.Millisecond
)

func specOf(g Grant, id string) spec {
	return spec{kind: g.Kind, mode: g.Mode, limit: g.Limit, delay: g.LockDelay, id: id}
}

func (s spec) String() string {
	k, md, id := "l", "x", s.id
	if s.kind == KindSemaphore {
		k = "s"
	}
	if s.mode == Shared {
		md = "s"
	}
	if id == "" {
		id = "-"
	}
	return fmt.Sprintf("%s %s %d %d %s %d", k, md, s.limit, s.delay.Milliseconds(), id, queueLiveness.Milliseconds())
}

// record is a name's record of richer grants as the scripts store it
// (scripts/rich.lua). Numbers are read as floats: the scripts' JSON writes
// integers, but in Lua's number type.
type record struct {
	K string  `json:"k"`
	N int     `json:"n"`
	Z float64 `json:"z"`
	H []struct {
		F string  `json:"f"`
		O string  `json:"o"`
		M string  `json:"m"`
		D float64 `json:"d"`
		Y float64 `json:"y"`
	} `json:"h"`
	Q []struct {
		O string  `json:"o"`
		M string  `json:"m"`
		D float64 `json:"d"`
	} `json:"q"`
}

// stateOf reads a record as of now, Redis's time in milliseconds: holders
// and waiters whose time passed are left out, as the next script would
// drop them. It also returns the token of the highest fence's holder.
func stateOf(raw string, now int64) (State, error) {
	var r record
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return State{}, fmt.Errorf("lock: unreadable record: %w", err)
	}
	s := State{Kind: KindLock}
	if r.K == "s" {
		s.Kind, s.Limit = KindSemaphore, r.N
	}
	z := int64(r.Z)
	for _, h := range r.H {
		left := int64(h.D) - now
		if left <= 0 {
			// Expired: with a lock-delay, the name is closed after it, as
			// the next script will record.
			if h.Y > 0 {
				z = max(z, int64(h.D+h.Y))
			}
			continue
		}
		f, _ := strconv.ParseInt(h.F, 10, 64)
		hh := Holder{Owner: h.O, Fence: f, TTL: ms(left)}
		if s.Kind == KindLock {
			hh.Mode = Exclusive
			if h.M == "s" {
				hh.Mode = Shared
			}
			s.Mode = hh.Mode
		}
		s.Holders = append(s.Holders, hh)
	}
	slices.SortFunc(s.Holders, func(a, b Holder) int { return cmp.Compare(a.Fence, b.Fence) })
	for _, w := range r.Q {
		if int64(w.D) > now {
			s.Waiters = append(s.Waiters, Waiter{Owner: w.O, Mode: waiterMode(s.Kind, w.M)})
		}
	}
	if z > now {
		s.DelayUntil = time.Now().Add(ms(z - now))
	}
	return s, nil
}

// waiterMode is a queued request's mode: a lock's, or "" for a
// semaphore's.
func waiterMode(k Kind, m string) Mode {
	switch {
	case k == KindSemaphore:
		return ""
	case m == "s":
		return Shared
	}
	return Exclusive
}

// plainState is the State of one plain holder (an exclusive lock).
func plainState(h Holder) State {
	h.Mode = Exclusive
	return State{Kind: KindLock, Mode: Exclusive, Holders: []Holder{h}}
}

// kindOf reads a script's kind word.
func kindOf(s string) Kind {
	if s == string(KindSemaphore) {
		return KindSemaphore
	}
	return KindLock
}

// parseGrants reads a grant message; ok is false for any other message.
func parseGrants(msg string) (at int64, grants map[string]int64, ok bool) {
	rest, found := strings.CutPrefix(msg, "= ")
	if !found {
		return 0, nil, false
	}
	f := strings.Fields(rest)
	if len(f) < 3 || len(f)%2 != 1 {
		return 0, nil, false
	}
	at, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, nil, false
	}
	grants = map[string]int64{}
	for i := 1; i+1 < len(f); i += 2 {
		fence, err := strconv.ParseInt(f[i+1], 10, 64)
		if err == nil {
			grants[f[i]] = fence
		}
	}
	return at, grants, true
}
