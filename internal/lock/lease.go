package lock

import (
	"errors"
	"time"
)

// KeyPrefix is put before a lock's name to form its Redis key.
const KeyPrefix = "lock:"

// Sentinel errors. Errors returned by this package match one of them with
// errors.Is while keeping the underlying message (the demo shows redsync's
// own text, "lock already taken, locked nodes: [0]").
var (
	ErrLocked      = errors.New("lock: already held")
	ErrNotHolder   = errors.New("lock: not the holder")
	ErrInvalidName = errors.New("lock: invalid name")
	// ErrInvalidArgument is a TTL, wait, owner, token or fence out of bounds.
	ErrInvalidArgument = errors.New("lock: invalid argument")
	ErrStaleFence      = errors.New("lock: stale fence")
	ErrUnavailable     = errors.New("lock: redis unavailable")
	// ErrTooManyWaiters refuses a wait while the replica has its maximum
	// of waiting requests (Config.MaxWaiters).
	ErrTooManyWaiters = errors.New("lock: too many waiting requests")
	ErrLost           = errors.New("lock: lease lost")
)

// Lease is a granted lock. Token is the secret that proves ownership; it
// must never be logged.
type Lease struct {
	Name  string
	Token string
	// TTL is the expiry set on the key at each acquire or extend.
	TTL time.Duration
	// Until is the end of the lease's validity as redsync computes it: the
	// expiry minus the time the request took and a clock-drift margin. Work
	// under the lock must end before it.
	Until time.Time
	// Fence and Owner are set on leases granted by TryAcquire: Fence is
	// strictly increasing per name across grants.
	Fence int64
	Owner string
	// Queued, on a lease granted from a fair queue, is how long before
	// the grant was answered the waiter had surely taken its place (since
	// the answer of the call that placed it): waits queued earlier are
	// granted first.
	Queued time.Duration
	// Kind, Mode and Limit are what the lease was granted as.
	Kind  Kind
	Mode  Mode
	Limit int
	// acquired is when a demo lease was taken, for its held-time metric.
	acquired time.Time
}

// kindError matches kind with errors.Is but prints cause's message.
type kindError struct{ kind, cause error }

func (e *kindError) Error() string   { return e.cause.Error() }
func (e *kindError) Unwrap() []error { return []error{e.kind, e.cause} }
