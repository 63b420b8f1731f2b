package lock

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Hold runs work while keeping l alive: it extends the lease every third of
// its TTL, the rhythm Redisson's watchdog uses, so one failed extension still
// leaves two thirds of the validity to retry in. work's context is cancelled
// the moment the lease can no longer be proven held, and Hold then returns an
// error matching ErrLost (wrapping the cause); otherwise it returns work's
// error. The returned lease carries the latest validity.
//
// Hold blocks until work returns, so work must honour its context.
func (m *Manager) Hold(ctx context.Context, l Lease, work func(context.Context) error) (Lease, error) {
	workCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- work(workCtx) }()

	timer := time.NewTimer(l.TTL / 3)
	defer timer.Stop()
	for {
		select {
		case err := <-done:
			return l, err
		case <-timer.C:
			// When work ended at the same moment, answer rather than extend.
			select {
			case err := <-done:
				return l, err
			default:
			}
		}
		next, err := m.Extend(workCtx, l)
		switch {
		case err == nil:
			l = next
			timer.Reset(l.TTL / 3)
		case errors.Is(err, ErrNotHolder) || !time.Now().Before(l.Until):
			cancel()
			<-done
			if l.Fence == 0 {
				m.demoEvent(ctx, EventLost, l.Name, l.TTL)
			}
			return l, fmt.Errorf("%w: %w", ErrLost, err)
		case workCtx.Err() != nil:
			// The caller gave up; work is stopping on its own.
			return l, <-done
		default:
			// Redis did not answer, but the lease is still valid: try again
			// soon, and give up exactly when the validity ends.
			timer.Reset(min(l.TTL/10, time.Until(l.Until)))
		}
	}
}
