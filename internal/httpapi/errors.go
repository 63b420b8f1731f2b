package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// errorBody is the one error shape of the service outside the README's demo
// endpoint, whose shape the README fixes: {"error":{"code","message"}}.
// Codes are stable; messages are for people. A refused acquire also says
// who holds the name (holder: the highest fence's; holders: all of them),
// in which mode (a lock) or with which limit (a semaphore), and how many
// wait in its queue; a failed fence check the current fence; a kind
// mismatch what the name is; a limit mismatch the holders' limit; a
// lock-delay when it ends.
type errorBody struct {
	Error        errorDetail  `json:"error"`
	Holder       *holderJSON  `json:"holder,omitempty"`
	Holders      []holderJSON `json:"holders,omitempty"`
	Mode         *lock.Mode   `json:"mode,omitempty"`
	Limit        *int         `json:"limit,omitempty"`
	Queue        *int         `json:"queue,omitempty"`
	Kind         lock.Kind    `json:"kind,omitempty"`
	DelayUntil   string       `json:"delay_until,omitempty"`
	CurrentFence *int64       `json:"current_fence,omitempty"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// holderJSON is one holder, never its token. Mode is a lock holder's.
type holderJSON struct {
	Owner string    `json:"owner"`
	Fence int64     `json:"fence"`
	TTLMS int64     `json:"ttl_ms"`
	Mode  lock.Mode `json:"mode,omitempty"`
}

// errorKinds is the one table from errors to answers. The first kind that
// matches with errors.Is wins; anything else is a 500 whose cause is logged
// but not shown.
var errorKinds = []struct {
	kind   error
	status int
	code   string
}{
	{lock.ErrInvalidName, http.StatusBadRequest, "invalid_argument"},
	{lock.ErrInvalidArgument, http.StatusBadRequest, "invalid_argument"},
	{errBadInput, http.StatusBadRequest, "invalid_argument"},
	{errTooLarge, http.StatusRequestEntityTooLarge, "payload_too_large"},
	{errMediaType, http.StatusUnsupportedMediaType, "unsupported_media_type"},
	// Shared locks, semaphores, fair queues and lock-delays in quorum mode.
	{lock.ErrUnsupported, http.StatusBadRequest, "unsupported"},
	{lock.ErrTooManyWaiters, http.StatusTooManyRequests, "too_many_requests"},
	{lock.ErrLocked, http.StatusConflict, "locked"},
	{lock.ErrKindMismatch, http.StatusConflict, "kind_mismatch"},
	{lock.ErrLimitMismatch, http.StatusConflict, "limit_mismatch"},
	{lock.ErrLockDelay, http.StatusConflict, "lock_delay"},
	{lock.ErrNotHolder, http.StatusConflict, "not_holder"},
	{lock.ErrStaleFence, http.StatusConflict, "stale_fence"},
	{lock.ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
	// The request's context ends when the client goes away (nobody reads
	// the answer) or when shutdown cancels it: either way, try again.
	{context.Canceled, http.StatusServiceUnavailable, "unavailable"},
}

// mapErrors answers the last error a handler recorded with c.Error, when
// the handler has not answered itself.
func mapErrors(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 || c.Writer.Written() {
			return
		}
		err := c.Errors.Last().Err
		for _, k := range errorKinds {
			if errors.Is(err, k.kind) {
				writeKnownError(c, err, k.status, k.code)
				return
			}
		}
		log.ErrorContext(c.Request.Context(), "Error: request failed", "path", c.FullPath(), "err", err)
		writeError(c, http.StatusInternalServerError, "internal", "internal error")
	}
}

func writeKnownError(c *gin.Context, err error, status int, code string) {
	body := errorBody{Error: errorDetail{Code: code, Message: message(err)}}
	var (
		locked  *lock.LockedError
		stale   *lock.StaleFenceError
		kind    *lock.KindMismatchError
		limit   *lock.LimitMismatchError
		delayed *lock.LockDelayError
	)
	switch {
	case errors.As(err, &locked):
		lockedBody(&body, locked)
		// A retry may win once the first holder's lease ends.
		c.Header("Retry-After", retryAfter(locked.FirstEnd()))
	case errors.As(err, &kind):
		body.Kind = kind.Kind
		if name := c.Param("name"); name != "" && lock.ValidateStrictName(name) == nil {
			body.Error.Message += "; use /v1/" + string(kind.Kind) + "s/" + name
		}
	case errors.As(err, &limit):
		body.Limit = &limit.Limit
	case errors.As(err, &delayed):
		body.DelayUntil = timeMS(delayed.Until)
		c.Header("Retry-After", retryAfter(time.Until(delayed.Until)))
	case errors.As(err, &stale):
		body.CurrentFence = &stale.Current
	case status == http.StatusServiceUnavailable:
		// Redis's own error can name hosts; the operator finds it in the log.
		body.Error.Message = "the lock store cannot be reached; try again shortly"
		switch {
		case errors.Is(err, lock.ErrStopping):
			body.Error.Message = "this replica is shutting down; try another"
		case errors.Is(err, context.Canceled):
			body.Error.Message = "the request was cancelled (the client left or the replica is stopping); try again"
		}
		c.Header("Retry-After", "1")
	case status == http.StatusTooManyRequests:
		c.Header("Retry-After", "1")
	}
	c.Set(errorCodeKey, code)
	c.AbortWithStatusJSON(status, body)
}

// lockedBody fills body from a refusal: the highest fence's holder, every
// holder, the holders' mode (a lock) or limit (a semaphore), and the queue.
func lockedBody(body *errorBody, e *lock.LockedError) {
	h := newHolderJSON(e.Holder)
	body.Holder = &h
	body.Holders = holdersJSON(e.Holders)
	if len(body.Holders) == 0 {
		body.Holders = []holderJSON{h}
	}
	if e.Kind == lock.KindSemaphore {
		body.Limit = &e.Limit
	} else {
		body.Mode = &e.Mode
	}
	body.Queue = &e.Queue
}

// message is err's text for a caller, without the package prefixes that
// only help in logs.
func message(err error) string {
	s := err.Error()
	for _, p := range []string{"lock: ", errBadInput.Error() + ": "} {
		s = strings.TrimPrefix(s, p)
	}
	if errors.Is(err, lock.ErrInvalidName) {
		s = "invalid lock name: " + s
	}
	return s
}

// retryAfter is a holder's remaining time in whole seconds, rounded up and
// at least 1, as the Retry-After header wants it.
func retryAfter(ttl time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(ttl.Seconds()))))
}

func writeError(c *gin.Context, status int, code, msg string) {
	c.Set(errorCodeKey, code)
	c.AbortWithStatusJSON(status, errorBody{Error: errorDetail{Code: code, Message: msg}})
}

func notFound(c *gin.Context) {
	writeError(c, http.StatusNotFound, "not_found", "no such route: "+c.Request.URL.Path)
}

func methodNotAllowed(c *gin.Context) {
	writeError(c, http.StatusMethodNotAllowed, "method_not_allowed", c.Request.Method+" is not allowed on "+c.Request.URL.Path)
}
