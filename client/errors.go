package client

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinels for errors.Is. Errors from the service carry one of the first
// group through *APIError; the second group says why a lease ended.
var (
	// ErrLocked: someone else holds the lock (after any wait). The error
	// is a *LockedError naming the holder.
	ErrLocked = errors.New("client: lock is held by someone else")
	// ErrNotHolder: the token no longer holds the lock (released, expired,
	// or taken over).
	ErrNotHolder = errors.New("client: not the lock's holder")
	// ErrStaleFence: the fence is not the live holder's. The error is a
	// *StaleFenceError with the current fence.
	ErrStaleFence = errors.New("client: stale fence")
	// ErrInvalidArgument: the service refused a name, duration, owner or
	// other parameter (400).
	ErrInvalidArgument = errors.New("client: invalid argument")
	// ErrUnauthenticated: the service wants a valid bearer token (401).
	ErrUnauthenticated = errors.New("client: unauthenticated")
	// ErrUnavailable: the service (or its Redis) could not be reached, or
	// it is shutting down. Trying again shortly, or on another replica,
	// may work.
	ErrUnavailable = errors.New("client: lock service unavailable")
	// ErrTooManyRequests: the replica has its maximum of waiting requests
	// (429).
	ErrTooManyRequests = errors.New("client: too many waiting requests")
	// ErrKindMismatch: the name is held as the other kind (a lock asked of
	// a semaphore, or the reverse). The error is a *KindMismatchError
	// naming the kind the name is held as.
	ErrKindMismatch = errors.New("client: the name is held as another kind")
	// ErrLimitMismatch: a semaphore asked with another limit than its
	// holders use. The error is a *LimitMismatchError with their limit.
	ErrLimitMismatch = errors.New("client: the semaphore is held with another limit")
	// ErrLockDelay: a lease with a lock-delay expired, and the name stays
	// refused until the delay ends. The error is a *LockDelayError.
	ErrLockDelay = errors.New("client: the name is in a lock-delay")
	// ErrUnsupported: the deployment cannot give what was asked (shared
	// locks, semaphores, fair waiting and lock-delays in quorum mode,
	// whose independent masters cannot count holders together).
	ErrUnsupported = errors.New("client: not supported by this lockd")

	// ErrLost: the lease can no longer be proven held. Err wraps the cause
	// too: ErrNotHolder, or ErrExpired (and the last renewal error).
	ErrLost = errors.New("client: lease lost")
	// ErrExpired: the lease's validity ran out before a renewal succeeded.
	ErrExpired = errors.New("client: lease validity ran out")
	// ErrReleased: the lease was given back with Release.
	ErrReleased = errors.New("client: lease released")
	// ErrMaxHold: KeepAlive stopped renewing because the lease was held
	// for KeepAliveOptions.MaxHold. The lease stays valid until Until, so
	// stop the work and Release it.
	ErrMaxHold = errors.New("client: lease held for its maximum time")
)

// codeErrors maps the service's stable error codes to sentinels.
var codeErrors = map[string]error{
	"locked":            ErrLocked,
	"not_holder":        ErrNotHolder,
	"stale_fence":       ErrStaleFence,
	"invalid_argument":  ErrInvalidArgument,
	"unauthenticated":   ErrUnauthenticated,
	"unavailable":       ErrUnavailable,
	"too_many_requests": ErrTooManyRequests,
	"kind_mismatch":     ErrKindMismatch,
	"limit_mismatch":    ErrLimitMismatch,
	"lock_delay":        ErrLockDelay,
	"unsupported":       ErrUnsupported,
}

// APIError is an error answer from the service: its HTTP status and the
// body's stable code and human message. It matches the sentinel of its
// code with errors.Is; a 502, 503 or 504 without a lockd body (a proxy's)
// matches ErrUnavailable, and a 401 ErrUnauthenticated.
type APIError struct {
	Status  int
	Code    string // "" when the body was not lockd's error shape
	Message string
	// RetryAfter is the Retry-After header, 0 when absent.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("lockd: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("lockd: %s: %s", e.Code, e.Message)
}

// Is makes errors.Is(err, ErrLocked) and the like work on the status and
// code, so callers never compare strings.
func (e *APIError) Is(target error) bool {
	if s, ok := codeErrors[e.Code]; ok && s == target {
		return true
	}
	switch target {
	case ErrUnavailable:
		return e.Status == http.StatusBadGateway || e.Status == http.StatusServiceUnavailable || e.Status == http.StatusGatewayTimeout
	case ErrUnauthenticated:
		return e.Status == http.StatusUnauthorized
	}
	return false
}

// LockedError is a refused acquire: who holds the lock or semaphore, and
// for how long at most. It matches ErrLocked and unwraps to its *APIError.
type LockedError struct {
	// Owner, Fence and TTL are the holder's with the highest fence.
	Owner string
	Fence int64
	// TTL is the holder's validity left when the service answered.
	TTL time.Duration
	// Holders are every live holder, by fence: one for an exclusive lock,
	// any number of shared holders, or a semaphore's Limit of them.
	Holders []Holder
	// Mode is a lock's holders' mode ("" for a semaphore).
	Mode Mode
	// Limit is a semaphore's limit (0 for a lock).
	Limit int
	// Queue is how many wait in the name's fair queue. A shared request
	// is refused while a queue holds someone, though the holders are
	// shared too: it may not jump the queue.
	Queue int
	// RetryAfter is when the service suggests trying again.
	RetryAfter time.Duration
	API        *APIError
}

func (e *LockedError) Error() string { return e.API.Error() }
func (e *LockedError) Unwrap() error { return e.API }

// StaleFenceError is a fence check that failed: Current is the live
// holder's fence, 0 when the lock is free. It matches ErrStaleFence and
// unwraps to its *APIError.
type StaleFenceError struct {
	Current int64
	API     *APIError
}

func (e *StaleFenceError) Error() string { return e.API.Error() }
func (e *StaleFenceError) Unwrap() error { return e.API }

// KindMismatchError is a request for a lock on a name held as a
// semaphore, or the reverse: Kind is what the name is held as. It matches
// ErrKindMismatch and unwraps to its *APIError.
type KindMismatchError struct {
	Kind Kind
	API  *APIError
}

func (e *KindMismatchError) Error() string { return e.API.Error() }
func (e *KindMismatchError) Unwrap() error { return e.API }

// LimitMismatchError is a semaphore acquire with another limit than the
// current holders': Limit is theirs. It matches ErrLimitMismatch and
// unwraps to its *APIError.
type LimitMismatchError struct {
	Limit int
	API   *APIError
}

func (e *LimitMismatchError) Error() string { return e.API.Error() }
func (e *LimitMismatchError) Unwrap() error { return e.API }

// LockDelayError is an acquire refused because a lease with a lock-delay
// expired on the name. It matches ErrLockDelay and unwraps to its
// *APIError.
type LockDelayError struct {
	// Until is when the delay ends, on the service's clock (compare
	// RetryAfter, which does not depend on this machine's).
	Until time.Time
	// RetryAfter is the delay left, in whole seconds rounded up.
	RetryAfter time.Duration
	API        *APIError
}

func (e *LockDelayError) Error() string { return e.API.Error() }
func (e *LockDelayError) Unwrap() error { return e.API }

// transient says whether trying again soon may succeed: the service or
// the network is the problem, not the request or the lease.
func transient(err error) bool {
	var api *APIError
	if errors.As(err, &api) {
		return api.Status >= 500 || api.Status == http.StatusTooManyRequests
	}
	return errors.Is(err, ErrUnavailable)
}
