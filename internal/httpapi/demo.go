package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// demoReply and demoError are the README's response shapes; structs rather
// than maps keep the keys in the documented order.
type demoReply struct {
	Message    string `json:"message"`
	ResourceID string `json:"resource_id"`
}

type demoError struct {
	Error   string `json:"error"`
	Details string `json:"details,omitempty"`
}

// releaseTimeout bounds the release that follows the critical section. It
// runs even when the request's context has ended (client gone, shutdown), so
// that the lock is not left to expire on its own.
const releaseTimeout = 5 * time.Second

// demoLock is GET /lock?resource_id=ID: take lock:ID with redsync's default
// retries, run the simulated critical operation while keeping the lease
// alive, then release it. Log lines and bodies are the README's.
func (s *server) demoLock(c *gin.Context) {
	id := c.Query("resource_id")
	if id == "" {
		c.JSON(http.StatusBadRequest, demoError{Error: "resource_id is required"})
		return
	}
	if err := lock.ValidateName(id); err != nil {
		c.JSON(http.StatusBadRequest, demoError{Error: "invalid resource_id: " + err.Error()})
		return
	}
	// The request's Redis commands, which the domain puts in its events
	// (tokens redacted).
	ctx, _ := lock.WithCommandLog(c.Request.Context())
	lease, err := s.locks.Acquire(ctx, id, s.opts.LockExpiry)
	if err != nil {
		s.log.ErrorContext(ctx, fmt.Sprintf("Error: Failed to acquire lock for resource %s: %v", id, err))
		if errors.Is(err, lock.ErrTooManyWaiters) {
			// Its retries wait like a /v1 waiter, and count as one.
			c.Header("Retry-After", "1")
			c.JSON(http.StatusTooManyRequests, demoError{Error: "Too many waiting requests", Details: message(err)})
			return
		}
		c.JSON(http.StatusInternalServerError, demoError{Error: "Failed to acquire lock", Details: err.Error()})
		return
	}
	s.log.InfoContext(ctx, fmt.Sprintf("Lock acquired for resource %s, performing critical operation", id))

	lease, err = s.locks.Hold(ctx, lease, s.criticalOperation)
	switch {
	case errors.Is(err, lock.ErrLost):
		// The key is gone or belongs to someone else: nothing to release.
		s.log.ErrorContext(ctx, fmt.Sprintf("Error: Lock lost for resource %s, critical operation cancelled: %v", id, err))
		c.JSON(http.StatusInternalServerError, demoError{Error: "Lock lost during critical operation", Details: err.Error()})
		return
	case err != nil:
		s.log.ErrorContext(ctx, fmt.Sprintf("Error: Critical operation cancelled for resource %s: %v", id, err))
	default:
		s.log.InfoContext(ctx, fmt.Sprintf("Critical operation completed for resource %s", id))
	}

	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if rerr := s.locks.Release(rctx, lease); rerr != nil {
		s.log.ErrorContext(ctx, fmt.Sprintf("Error: Failed to release lock for resource %s: %v", id, rerr))
		c.JSON(http.StatusInternalServerError, demoError{Error: "Failed to release lock", Details: rerr.Error()})
		return
	}
	s.log.InfoContext(ctx, fmt.Sprintf("Lock released for resource %s", id))
	if err != nil {
		c.JSON(http.StatusServiceUnavailable, demoError{Error: "Critical operation cancelled", Details: err.Error()})
		return
	}
	c.JSON(http.StatusOK, demoReply{Message: "Lock acquired and released successfully", ResourceID: id})
}

// criticalOperation stands in for the work a real service would guard: it
// takes CriticalSection unless the lease is lost or the request ends first.
func (s *server) criticalOperation(ctx context.Context) error {
	t := time.NewTimer(s.opts.CriticalSection)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
