package client

import (
	"context"
	"time"
)

// Kind is what a name is held as. A name is one kind at a time: asking
// for the other kind while it has holders is ErrKindMismatch.
type Kind string

// The kinds of names.
const (
	// KindLock: one exclusive holder, or any number of shared ones.
	KindLock Kind = "lock"
	// KindSemaphore: at most its limit of holders, each with a permit of
	// its own (token and fence).
	KindSemaphore Kind = "semaphore"
)

// Mode is how a lock is held.
type Mode string

// The modes of a lock.
const (
	// Exclusive: one holder and nobody else (the default).
	Exclusive Mode = "exclusive"
	// Shared: any number of shared holders at once, and no exclusive one.
	Shared Mode = "shared"
)

// AcquireSemaphore takes one of limit permits of the semaphore name,
// waiting up to opts.Wait for one to be given back. Every holder of a
// semaphore must ask with the same limit (1 to 1000). The lease is a
// permit with its own token and fence; its Extend, Release, Check and
// KeepAlive work as a lock's. opts.Mode must be empty. It returns a
// *LockedError (ErrLocked) when every permit stayed held, a
// *LimitMismatchError (ErrLimitMismatch) when the holders use another
// limit, a *KindMismatchError (ErrKindMismatch) when the name is a lock, a
// *LockDelayError (ErrLockDelay), ErrUnsupported (in quorum mode),
// ErrInvalidArgument, ErrUnauthenticated, ErrUnavailable,
// ErrTooManyRequests, another *APIError, or ctx's error.
func (c *Client) AcquireSemaphore(ctx context.Context, name string, limit int, opts AcquireOptions) (*Lease, error) {
	return c.acquire(ctx, KindSemaphore, name, limit, opts)
}

// ExtendSemaphore is Extend for a permit of the semaphore name: it also
// returns ErrKindMismatch when the name is a lock.
func (c *Client) ExtendSemaphore(ctx context.Context, name, token string, ttl time.Duration) (*Lease, error) {
	return c.extendLease(ctx, KindSemaphore, name, token, ttl)
}

// ReleaseSemaphore is Release for a permit of the semaphore name: it also
// returns ErrKindMismatch when the name is a lock.
func (c *Client) ReleaseSemaphore(ctx context.Context, name, token string) error {
	return c.release(ctx, KindSemaphore, name, token)
}

// CheckSemaphore is Check for the semaphore name: fence is current while
// any live permit has it. It also returns ErrKindMismatch when the name is
// a lock.
func (c *Client) CheckSemaphore(ctx context.Context, name string, fence int64) error {
	return c.check(ctx, KindSemaphore, name, fence)
}

// GetSemaphore returns the state of the semaphore name: its limit and
// every holder (Owner, Fence and TTL are the latest grant's). A free name
// has Held false. It returns a *KindMismatchError (ErrKindMismatch) when
// the name is a lock, ErrInvalidArgument, ErrUnauthenticated,
// ErrUnavailable, another *APIError, or ctx's error.
func (c *Client) GetSemaphore(ctx context.Context, name string) (LockInfo, error) {
	return c.get(ctx, KindSemaphore, name)
}
