package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Lease is a granted lock, shared or exclusive, or a semaphore's permit.
// Its methods are safe for concurrent use, and work alike for every kind.
//
// Once Done is closed the lease is over for this value: Err says why, and
// Extend refuses. Release may still be called (and should be, after
// ErrMaxHold, or to free the lock early after a loss that was only a
// failure to prove it held).
type Lease struct {
	c     *Client
	name  string
	token string
	owner string
	fence int64
	ttl   time.Duration
	kind  Kind
	mode  Mode
	limit int

	// ctx is cancelled with Err when done is closed.
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}

	mu      sync.Mutex
	until   time.Time
	expiry  *time.Timer // closes done at until, unless a renewal moves it
	err     error
	lastErr error // the last failed renewal, for the reason of a loss
	// renewSent is when KeepAlive's renewal now on its way was sent (zero
	// when none is): a validity that runs out while it waits for an
	// answer is a loss to an unavailable service, not one without cause.
	renewSent time.Time
	// Set while KeepAlive's goroutine runs: stopRenew ends it and
	// renewDone is closed when it has returned.
	stopRenew context.CancelFunc
	renewDone chan struct{}
}

func newLease(c *Client, lj leaseJSON, sent time.Time, ttl time.Duration) *Lease {
	l := &Lease{
		c: c, name: lj.Name, token: lj.Token, owner: lj.Owner, fence: lj.Fence, ttl: ttl,
		kind: lj.Kind, mode: lj.Mode, limit: lj.Limit,
		done: make(chan struct{}),
		// Counted from the send: the answer's own trip is not ours.
		until: sent.Add(time.Duration(lj.WaitedMS+lj.TTLMS) * time.Millisecond),
	}
	l.ctx, l.cancel = context.WithCancelCause(context.Background())
	// The timer may fire at once (a slow answer can arrive after the
	// validity it grants): expired waits for l.expiry to be set.
	l.mu.Lock()
	l.expiry = time.AfterFunc(time.Until(l.until), l.expired)
	l.mu.Unlock()
	return l
}

// Name returns the lock's or semaphore's name.
func (l *Lease) Name() string { return l.name }

// Kind returns KindLock or KindSemaphore.
func (l *Lease) Kind() Kind { return l.kind }

// Mode returns a lock lease's mode (Exclusive or Shared), "" for a
// semaphore's permit.
func (l *Lease) Mode() Mode { return l.mode }

// Limit returns a semaphore's limit, 0 for a lock.
func (l *Lease) Limit() int { return l.limit }

// Token returns the secret that proves holding; keep it out of logs.
func (l *Lease) Token() string { return l.token }

// Fence returns the lease's fence: it rises with every grant of the name,
// so the resource the lock protects can refuse writes from an older holder.
func (l *Lease) Fence() int64 { return l.fence }

// Owner returns the owner text the lease was acquired with.
func (l *Lease) Owner() string { return l.owner }

// TTL returns the lease's time to live, which every Extend renews.
func (l *Lease) TTL() time.Duration { return l.ttl }

// Until returns the moment up to which the lease is known to be held, on
// this machine's monotonic clock: the send time of the last successful
// acquire or extend, plus the server's wait, plus the validity it granted.
func (l *Lease) Until() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.until
}

// Done returns a channel closed when the lease is released, lost, or held
// for its MaxHold.
func (l *Lease) Done() <-chan struct{} { return l.done }

// Err returns nil while the lease is held, then why it ended: ErrReleased,
// ErrMaxHold, or ErrLost wrapping the cause (ErrNotHolder, or ErrExpired
// and the last renewal's error).
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Context returns a context cancelled, with Err as its cause, when Done is
// closed. Run the work done under the lock with it.
func (l *Lease) Context() context.Context { return l.ctx }

// finish ends the lease with err, once. l.mu must be held.
func (l *Lease) finish(err error) {
	if l.err != nil {
		return
	}
	l.err = err
	l.expiry.Stop()
	close(l.done)
	l.cancel(err)
}

// expired runs when the validity timer fires.
func (l *Lease) expired() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if wait := time.Until(l.until); wait > 0 {
		// A renewal moved until while the timer was firing.
		l.expiry.Reset(wait)
		return
	}
	if !l.renewSent.IsZero() {
		l.finish(fmt.Errorf("%w: %w; last renewal: %w: sent %v before, no answer yet", ErrLost, ErrExpired,
			ErrUnavailable, time.Since(l.renewSent).Round(time.Millisecond)))
		return
	}
	if l.lastErr != nil {
		l.finish(fmt.Errorf("%w: %w; last renewal: %w", ErrLost, ErrExpired, l.lastErr))
		return
	}
	l.finish(fmt.Errorf("%w: %w", ErrLost, ErrExpired))
}

// Extend renews the lease for its TTL, counted from when the request is
// sent. It returns the lease's Err when it has ended, ErrNotHolder or
// ErrKindMismatch (and ends the lease as lost) when the token no longer
// holds the name, ErrUnavailable and other *APIError values for failures
// that leave the lease as it was, or ctx's error.
func (l *Lease) Extend(ctx context.Context) error {
	if err := l.Err(); err != nil {
		return err
	}
	lj, sent, err := l.c.extend(ctx, l.kind, l.name, l.token, 0) // 0: the acquire's TTL
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		// A name held as the other kind is held by others: ours is gone.
		if errors.Is(err, ErrNotHolder) || errors.Is(err, ErrKindMismatch) {
			l.finish(fmt.Errorf("%w: %w", ErrLost, err))
		}
		return err
	}
	if l.err != nil {
		// The validity ran out while the request was on its way: the lease
		// was already reported lost, and that stays so.
		return l.err
	}
	if u := sent.Add(time.Duration(lj.TTLMS) * time.Millisecond); u.After(l.until) {
		l.until = u
		l.expiry.Reset(time.Until(u))
	}
	l.lastErr = nil
	return nil
}

// Check asks the service whether the lease's fence is still current (a
// live holder's). It returns nil when it is, a *StaleFenceError
// (ErrStaleFence) when it is not, ErrUnavailable, another *APIError, or
// ctx's error; unlike Extend it never ends the lease.
func (l *Lease) Check(ctx context.Context) error {
	return l.c.check(ctx, l.kind, l.name, l.fence)
}

// Release stops any KeepAlive and gives the lock back. On success Err
// becomes ErrReleased. It returns ErrNotHolder when the lease had already
// ended on the service (Err then reports it lost), ErrUnavailable and other
// *APIError values (the lease then simply runs out), or ctx's error.
func (l *Lease) Release(ctx context.Context) error {
	l.stopKeepAlive()
	err := l.c.release(ctx, l.kind, l.name, l.token)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.finish(ErrReleased)
	case errors.Is(err, ErrNotHolder), errors.Is(err, ErrKindMismatch):
		l.finish(fmt.Errorf("%w: %w", ErrLost, err))
	}
	return err
}

// KeepAliveOptions tune KeepAlive.
type KeepAliveOptions struct {
	// MaxHold, when positive, ends the lease with ErrMaxHold this long
	// after KeepAlive was called: renewals stop and Done is closed. The
	// lock stays held until Until, so stop the work, then Release.
	MaxHold time.Duration
}

// KeepAlive renews the lease in the background every third of its TTL
// until it is released, lost, held for opts.MaxHold, or ctx ends. A failed
// renewal that may be transient (503, 429, 5xx, network) is retried with a
// short backoff while the lease is still valid; anything else ends the
// lease as lost. When ctx ends renewals stop quietly, and the lease then
// runs out at Until unless Extend is called. Only the first call on a lease
// does anything.
//
// Each renewal is traced as the root of a trace of its own, linked to the
// span in ctx (the caller's, usually the acquire's parent), rather than as
// a child of it: a lease held for hours would otherwise add a span every
// few seconds to a trace whose request ended long ago.
func (l *Lease) KeepAlive(ctx context.Context, opts KeepAliveOptions) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.renewDone != nil || l.err != nil {
		return
	}
	link := trace.SpanContextFromContext(ctx)
	ctx = context.WithValue(trace.ContextWithSpanContext(ctx, trace.SpanContext{}), renewalLinkKey{}, link)
	ctx, l.stopRenew = context.WithCancel(ctx)
	l.renewDone = make(chan struct{})
	go l.renew(ctx, opts, l.renewDone)
}

// stopKeepAlive ends KeepAlive's goroutine and waits for it, so that no
// renewal races the release that follows.
func (l *Lease) stopKeepAlive() {
	l.mu.Lock()
	stop, done := l.stopRenew, l.renewDone
	l.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

func (l *Lease) renew(ctx context.Context, opts KeepAliveOptions, stopped chan struct{}) {
	defer close(stopped)
	// A third of the TTL leaves two more thirds for retries before the
	// lease runs out (Redisson's watchdog rhythm).
	interval := max(l.ttl/3, 10*time.Millisecond)
	tick := time.NewTimer(interval)
	defer tick.Stop()
	var maxHold <-chan time.Time
	if opts.MaxHold > 0 {
		t := time.NewTimer(opts.MaxHold)
		defer t.Stop()
		maxHold = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-l.done:
			return
		case <-maxHold:
			l.mu.Lock()
			l.finish(ErrMaxHold)
			l.mu.Unlock()
			return
		case <-tick.C:
		}
		if !l.renewOnce(ctx, interval, maxHold) {
			return
		}
		tick.Reset(interval)
	}
}

// renewOnce extends the lease, retrying transient failures while it is
// still valid. It returns false when renewals should stop.
func (l *Lease) renewOnce(ctx context.Context, interval time.Duration, maxHold <-chan time.Time) bool {
	backoff := min(25*time.Millisecond, interval/4)
	for {
		l.mu.Lock()
		until := l.until
		l.renewSent = time.Now()
		l.mu.Unlock()
		// An attempt that outlives the validity proves nothing.
		actx, cancel := context.WithDeadline(ctx, until)
		err := l.Extend(actx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// Cut off by the validity, not by ctx: the service did not
			// answer in time, which is what its being unavailable means
			// to this lease.
			err = fmt.Errorf("%w: no answer before the lease's validity ran out: %w", ErrUnavailable, err)
		}
		// The renewal's outcome replaces renewSent in one step, so that
		// an expiry in between still finds why.
		l.mu.Lock()
		l.renewSent = time.Time{}
		switch {
		case err == nil:
			l.mu.Unlock()
			return true
		case ctx.Err() != nil || l.err != nil:
			l.mu.Unlock()
			return false
		case !transient(err):
			l.finish(fmt.Errorf("%w: %w", ErrLost, err))
			l.mu.Unlock()
			return false
		}
		l.lastErr = err
		l.mu.Unlock()
		// When the validity runs out first, the expiry timer ends the
		// lease and l.done stops the retries.
		select {
		case <-ctx.Done():
			return false
		case <-l.done:
			return false
		case <-maxHold:
			l.mu.Lock()
			l.finish(ErrMaxHold)
			l.mu.Unlock()
			return false
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, max(interval/2, 25*time.Millisecond))
	}
}
