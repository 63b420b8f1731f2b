package check

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Outcome of one operation as its client saw it.
type Outcome int

const (
	OK      Outcome = iota // 2xx
	Refused                // definite failure: 409 locked / not_holder / stale_fence, or 400
	Unknown                // timeout, transport error, 5xx, connection reset: may or may not have taken effect
)

// String names the outcome as the reports print it.
func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Refused:
		return "refused"
	case Unknown:
		return "unknown"
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// The values of Op.Kind and Write.Kind.
const (
	KindAcquire   = "acquire"
	KindExtend    = "extend"
	KindRelease   = "release"
	KindWrite     = "write"
	KindIncrement = "increment"
)

// Op is one client call against lockd's /v1 API, times on ONE monotonic clock
// (time.Since(base) in the harness process; out-of-process clients report
// CLOCK_MONOTONIC offsets translated to the same base).
type Op struct {
	Client   int    // sequential client id: a client never has two ops in flight
	Kind     string // "acquire", "extend", "release"
	Lock     string
	Call     time.Duration // just before the request was sent
	Return   time.Duration // just after the answer arrived (for Unknown: when the client gave up)
	Outcome  Outcome
	Token    string        // acquire OK: the lease's token; extend/release: the token sent
	Fence    int64         // acquire/extend OK: the lease's fence
	TTL      time.Duration // requested ttl (acquire/extend)
	Validity time.Duration // acquire/extend OK: ttl_ms from the answer
	Waited   time.Duration // acquire OK: waited_ms from the answer

	// The richer grants (acquire ops; extends and releases need not repeat
	// them). The zero values are an exclusive lock without fair waiting or
	// lock-delay, which is what every history held before them.
	Mode      string        `json:",omitempty"` // locks: ModeExclusive or ModeShared; "" is exclusive
	Limit     int           `json:",omitempty"` // semaphores: the limit asked for; 0 for a lock
	Fair      bool          `json:",omitempty"` // waited in the name's fair queue
	LockDelay time.Duration `json:",omitempty"` // the lease's lock-delay
	// Queued is queued_ms from a fair acquire's OK answer: how long before
	// building the answer lockd had last seen the wait confirmed in the
	// name's queue (the reply of the script that queued it), truncated to
	// whole milliseconds; 0 when the acquire never queued or lockd did not
	// say. It is the only witness of when a wait began on the server: Call
	// is not, since the request may have been held up on its way.
	Queued time.Duration `json:",omitempty"`
}

// The values of Op.Mode.
const (
	ModeExclusive = "exclusive"
	ModeShared    = "shared"
)

// exclusive reports whether op asks for an exclusive lock: not a semaphore
// permit, not a shared hold.
func (op Op) exclusive() bool { return op.Limit == 0 && op.Mode != ModeShared }

// Write is one attempt to write the fenced store (a resource the locks protect).
type Write struct {
	Client   int
	Lock     string // the resource = the lock's name
	Fence    int64
	Token    string        // the lease the writer believed it held (for mapping to its grant)
	At       time.Duration // when the store decided, same clock
	Accepted bool
	Kind     string // "write" or "increment" (read-modify-write counter)
	Value    int64  // for increments: the value written (read+1)
}

// describeOp names ops[i] for a violation: its index in the history (the
// line of the JSON-lines file), client, kind, times and answer. Tokens are
// secrets even in a test run, so only a short hash is shown.
func describeOp(i int, op Op) string {
	s := fmt.Sprintf("op #%d (client %d %s [%v, %v] %s", i, op.Client, op.Kind, op.Call, op.Return, op.Outcome)
	if op.Outcome == OK && op.Kind != KindRelease {
		s += fmt.Sprintf(" fence %d", op.Fence)
	}
	switch {
	case op.Limit > 0:
		s += fmt.Sprintf(" limit %d", op.Limit)
	case op.Mode == ModeShared:
		s += " shared"
	}
	if op.Fair {
		s += " fair"
	}
	if op.Queued > 0 {
		s += fmt.Sprintf(" queued %v", op.Queued)
	}
	if op.LockDelay > 0 {
		s += fmt.Sprintf(" lock-delay %v", op.LockDelay)
	}
	if op.Token != "" {
		s += " token " + tokenHash(op.Token)
	}
	return s + ")"
}

// describeWrite names writes[i] the way describeOp names an op.
func describeWrite(i int, w Write) string {
	verdict := "rejected"
	if w.Accepted {
		verdict = "accepted"
	}
	s := fmt.Sprintf("write #%d (client %d %s at %v fence %d %s", i, w.Client, w.Kind, w.At, w.Fence, verdict)
	if w.Kind == KindIncrement {
		s += fmt.Sprintf(" value %d", w.Value)
	}
	if w.Token != "" {
		s += " token " + tokenHash(w.Token)
	}
	return s + ")"
}

// tokenHash is enough of a token's SHA-256 to match ops up by eye.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return "#" + hex.EncodeToString(sum[:4])
}
