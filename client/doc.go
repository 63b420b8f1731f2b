// Package client is the Go client for lockd's /v1 lock API: named, fenced
// leases that any number of processes on any number of machines can compete
// for.
//
// A Client talks to one lockd URL (any replica will do; they share their
// locks through Redis):
//
//	c, err := client.New("http://localhost:8081", client.Options{Token: os.Getenv("LOCKD_TOKEN")})
//	lease, err := c.Acquire(ctx, "nightly-report", client.AcquireOptions{TTL: 30 * time.Second, Wait: time.Minute})
//	if errors.Is(err, client.ErrLocked) { ... someone else has it ... }
//	defer lease.Release(context.WithoutCancel(ctx))
//	lease.KeepAlive(ctx, client.KeepAliveOptions{})
//	err = doWork(lease.Context(), lease.Fence())
//
// # Kinds of leases
//
// A lock is exclusive by default; AcquireOptions.Mode Shared lets any
// number of shared holders hold it at once, and no exclusive one.
// AcquireSemaphore takes one of a semaphore's limit permits. Every lease,
// whatever its kind, has a token, a fence and a TTL, and its Extend,
// Release, Check and KeepAlive work alike. AcquireOptions.Fair waits in the
// name's queue, in arrival order across every replica, and
// AcquireOptions.LockDelay keeps the name refused for a while if the lease
// expires rather than being released. Get and GetSemaphore show every
// holder, the queue's length and any lock-delay in force.
//
// # Validity
//
// A lease is only known to be held until Until: the moment its request was
// sent, plus the time the server waited for the lock, plus the ttl_ms it
// answered with. The time the answer took to come back is never counted as
// held, so a slow network makes the client give up early, not late.
//
// # Keeping a lease
//
// KeepAlive renews the lease in the background at a third of its TTL,
// retrying transient failures (503, network errors) for as long as the
// lease is still valid. Done is closed, and Context cancelled, the moment
// the lease is released, lost (the service says the token no longer holds
// it, or the validity ran out before a renewal succeeded) or held for
// KeepAliveOptions.MaxHold; Err says which. Work done under the lock should
// run under Context and stop when it ends, and should still send Fence with
// every write to the resource it protects: a process can be paused past its
// lease without noticing (see doc/FENCING.md).
//
// # Errors
//
// Every error from the service is an *APIError; the stable ones also match
// a sentinel with errors.Is (ErrLocked, ErrNotHolder, ErrStaleFence,
// ErrKindMismatch, ErrLimitMismatch, ErrLockDelay, ErrUnsupported,
// ErrInvalidArgument, ErrUnauthenticated, ErrUnavailable,
// ErrTooManyRequests). A refused acquire is a *LockedError that says who
// holds the lock (every holder, their mode or limit, and the queue), a
// superseded fence a *StaleFenceError, a name of the other kind a
// *KindMismatchError, a semaphore asked with another limit a
// *LimitMismatchError, and a name in a lock-delay a *LockDelayError.
// Network failures match ErrUnavailable too, since trying again later (or
// another replica) is the answer to both.
//
// # Tracing
//
// Every request carries the W3C trace context (traceparent, tracestate) of
// the span in its ctx, so a caller's trace continues into lockd. The client
// writes the headers itself rather than through otel's global propagator,
// which does nothing until the application sets one.
//
// Each request is also an OpenTelemetry client span, "lockd acquire",
// "lockd extend", "lockd release", "lockd check", "lockd inspect" (Get,
// GetSemaphore) or "lockd list", made by Options.TracerProvider or else
// otel's global provider: until the application installs one its spans
// record nothing and cost next to nothing, and the traceparent sent is the
// caller's own span. A span carries http.request.method, server.address,
// server.port, http.response.status_code and, on failure, error.type: the
// service's error code (locked, not_holder, unavailable …), the status
// for an answer that is not lockd's, or a word for a failure with no
// answer (timeout, connection_refused, connection_reset, dns, tls,
// invalid_response, canceled, deadline_exceeded, _OTHER). Its status is
// Error for a 5xx, a 4xx other than 409, no answer, or an answer that does
// not decode; a 409 (the lock is held, the token or fence is not current)
// is the service's normal answer, and a caller that gives up (its ctx
// ends) is no failure of the call, so neither marks the span as failed.
// No span carries a lock's name, a token, an owner or a URL path (which
// holds the name).
//
// KeepAlive's renewals are not children of the caller's span: each is the
// root of a trace of its own, linked to the span in the ctx KeepAlive was
// given, so that a lease held for hours does not grow its caller's trace
// every few seconds. Without a TracerProvider they send no traceparent.
package client
