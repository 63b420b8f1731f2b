package lock

import (
	"errors"
	"fmt"
	"time"
)

// Kind is what a name is held as: a lock (one exclusive holder, or any
// number of shared ones) or a semaphore (at most Limit holders). A name is
// one kind at a time.
type Kind string

// The kinds of name.
const (
	KindLock      Kind = "lock"
	KindSemaphore Kind = "semaphore"
)

// label is k for an Observer: the zero Kind is a lock.
func (k Kind) label() string {
	if k == KindSemaphore {
		return string(KindSemaphore)
	}
	return string(KindLock)
}

// Mode is how a lock is held.
type Mode string

// The modes of a lock. An exclusive holder excludes everyone; shared
// holders exclude only exclusive ones.
const (
	Exclusive Mode = "exclusive"
	Shared    Mode = "shared"
)

// Limits of the richer grants.
const (
	// MaxLimit bounds a semaphore's limit: every operation on a semaphore
	// reads its holders, so their number is kept modest.
	MaxLimit = 1000
	// MaxLockDelay bounds Grant.LockDelay.
	MaxLockDelay = time.Minute
)

// More errors of the richer grants, matched with errors.Is.
var (
	// ErrKindMismatch: the name is held as the other kind (see
	// *KindMismatchError).
	ErrKindMismatch = errors.New("lock: the name is held as another kind")
	// ErrLimitMismatch: a semaphore asked with another limit than its
	// holders' (see *LimitMismatchError).
	ErrLimitMismatch = errors.New("lock: the semaphore is held with another limit")
	// ErrLockDelay: a lease with a lock-delay expired, and the name stays
	// refused until the delay ends (see *LockDelayError).
	ErrLockDelay = errors.New("lock: the name is in a lock-delay")
	// ErrUnsupported: the request needs what this mode cannot give safely
	// (shared locks, semaphores, fair queues and lock-delays in quorum
	// mode, whose independent masters cannot count holders together).
	ErrUnsupported = errors.New("lock: not supported in this mode")
)

// KindMismatchError says what kind the name is held as.
type KindMismatchError struct{ Kind Kind }

func (e *KindMismatchError) Error() string {
	return fmt.Sprintf("lock: the name is held as a %s", e.Kind)
}

// Is makes errors.Is(err, ErrKindMismatch) true.
func (e *KindMismatchError) Is(target error) bool { return target == ErrKindMismatch }

// LimitMismatchError carries the limit the semaphore's holders use.
type LimitMismatchError struct{ Limit int }

func (e *LimitMismatchError) Error() string {
	return fmt.Sprintf("lock: the semaphore is held with limit %d", e.Limit)
}

// Is makes errors.Is(err, ErrLimitMismatch) true.
func (e *LimitMismatchError) Is(target error) bool { return target == ErrLimitMismatch }

// LockDelayError carries the end of a lock-delay in force.
type LockDelayError struct{ Until time.Time }

func (e *LockDelayError) Error() string {
	return fmt.Sprintf("lock: a lease with a lock-delay expired without a release; the name is refused until %s",
		e.Until.UTC().Format(eventTime))
}

// Is makes errors.Is(err, ErrLockDelay) true.
func (e *LockDelayError) Is(target error) bool { return target == ErrLockDelay }

// State is what Inspect shows of a name, never tokens.
type State struct {
	Kind Kind
	// Mode is the current holders' mode, for a lock ("" when free).
	Mode Mode
	// Limit is a semaphore's limit.
	Limit int
	// Holders are the live holders by fence, ascending.
	Holders []Holder
	// Waiters are those in the name's fair queue, first to be served
	// first.
	Waiters []Waiter
	// DelayUntil is the end of a lock-delay in force, else zero.
	DelayUntil time.Time
}

// Waiter is a request in a name's fair queue. It never carries the
// token.
type Waiter struct {
	Owner string
	Mode  Mode // a lock waiter's mode ("" for a semaphore's)
}

// top is the holder with the highest fence (the zero Holder when none).
func (s State) top() Holder {
	if len(s.Holders) == 0 {
		return Holder{}
	}
	return s.Holders[len(s.Holders)-1]
}

// rich reports whether g needs the record layout of richer grants (see
// scripts/rich.lua) rather than a plain exclusive lock's one value.
func (g Grant) rich() bool {
	return g.Kind == KindSemaphore || g.Mode == Shared || g.Fair || g.LockDelay > 0
}

// normalize fills g's defaults and checks its kind, mode, limit and delay.
func (m *Manager) normalize(g *Grant) error {
	if g.Kind == "" {
		g.Kind = KindLock
	}
	switch g.Kind {
	case KindLock:
		if g.Mode == "" {
			g.Mode = Exclusive
		}
		if g.Mode != Exclusive && g.Mode != Shared {
			return invalid("mode %q is neither %q nor %q", truncate(string(g.Mode), 32), Exclusive, Shared)
		}
		if g.Limit != 0 {
			return invalid("limit is for semaphores; a lock takes a mode")
		}
	case KindSemaphore:
		if g.Mode != "" {
			return invalid("mode is for locks; a semaphore takes a limit")
		}
		if g.Limit < 1 || g.Limit > MaxLimit {
			return invalid("limit %d is outside 1 to %d", g.Limit, MaxLimit)
		}
	default:
		return invalid("kind %q is neither %q nor %q", truncate(string(g.Kind), 32), KindLock, KindSemaphore)
	}
	if g.LockDelay < 0 || g.LockDelay > MaxLockDelay {
		return invalid("lock_delay %v is outside 0s to %v", g.LockDelay, MaxLockDelay)
	}
	if g.LockDelay%time.Millisecond != 0 {
		return invalid("lock_delay %v is finer than a millisecond", g.LockDelay)
	}
	if g.rich() && len(m.nodes) > 1 {
		return &kindError{ErrUnsupported, errors.New("lock: shared locks, semaphores, fair queues and lock-delays need one Redis, Sentinel or a Redis Cluster; in quorum mode independent masters cannot count holders together")}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
