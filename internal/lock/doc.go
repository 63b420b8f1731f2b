// Package lock is the lock domain of go-distributed-lock: a Manager that
// takes, extends and releases named leases over one or more Redis nodes,
// and Hold, which keeps a lease alive while work runs. The demo's leases
// are redsync's; the service API's (/v1) are fenced grants, each operation
// one Lua script of scripts/.
//
// A lock named N lives in the Redis key "lock:N" and holds a random token
// (with, for a fenced grant, its fence, TTL, grant time and owner); only
// that token can extend or release it. The package knows nothing of
// HTTP: callers map its sentinel errors (ErrLocked, ErrNotHolder,
// ErrInvalidName, ErrUnavailable, ErrLost) with errors.Is.
package lock
