// Package lock is the lock domain of go-distributed-lock: a Manager that
// takes, extends and releases named leases over one or more Redis nodes
// through redsync, and Hold, which keeps a lease alive while work runs.
//
// A lock named N lives in the Redis key "lock:N" and holds a random token;
// only that token can extend or release it. The package knows nothing of
// HTTP: callers map its sentinel errors (ErrLocked, ErrNotHolder,
// ErrInvalidName, ErrUnavailable, ErrLost) with errors.Is.
package lock
