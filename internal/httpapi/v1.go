package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// leaseJSON is a granted lease. TTLMS and WaitedMS are measured at the same
// moment, just before the answer is written, so a client that counts
// send time + waited_ms + ttl_ms never overestimates its validity. Mode is
// a lock's, Limit a semaphore's.
type leaseJSON struct {
	Name      string    `json:"name"`
	Kind      lock.Kind `json:"kind"`
	Token     string    `json:"token"`
	Fence     int64     `json:"fence"`
	Owner     string    `json:"owner"`
	TTLMS     int64     `json:"ttl_ms"`
	WaitedMS  int64     `json:"waited_ms"`
	ExpiresAt string    `json:"expires_at"` // timeMS, as every instant /v1 shows
	Mode      lock.Mode `json:"mode,omitempty"`
	Limit     int       `json:"limit,omitempty"`
	// QueuedMS is set on a lease granted from a fair queue (lock.Lease.Queued).
	QueuedMS int64 `json:"queued_ms,omitempty"`
}

func newLeaseJSON(l lock.Lease, waited time.Duration) leaseJSON {
	out := leaseJSON{
		Name: l.Name, Kind: l.Kind, Token: l.Token, Fence: l.Fence, Owner: l.Owner,
		TTLMS:     max(time.Until(l.Until).Milliseconds(), 0),
		WaitedMS:  waited.Milliseconds(),
		ExpiresAt: timeMS(l.Until),
		QueuedMS:  l.Queued.Milliseconds(),
	}
	switch out.Kind {
	case lock.KindSemaphore:
		out.Limit = l.Limit
	default:
		out.Kind, out.Mode = lock.KindLock, l.Mode
		if out.Mode == "" {
			out.Mode = lock.Exclusive
		}
	}
	return out
}

// lockJSON is GET /v1/locks/{name}: owner, fence and ttl_ms are the
// highest fence's holder's, as before there were several; Mode is the
// holders' ("" when free).
type lockJSON struct {
	Name       string       `json:"name"`
	Kind       lock.Kind    `json:"kind"`
	Held       bool         `json:"held"`
	Owner      string       `json:"owner"`
	Fence      int64        `json:"fence"`
	TTLMS      int64        `json:"ttl_ms"`
	Mode       lock.Mode    `json:"mode"`
	Holders    []holderJSON `json:"holders"`
	Queue      int          `json:"queue"`
	Waiters    []waiterJSON `json:"waiters"`
	DelayUntil string       `json:"delay_until,omitempty"`
}

// semaphoreJSON is GET /v1/semaphores/{name}; Limit is 0 when nobody
// holds or waits for it.
type semaphoreJSON struct {
	Name       string       `json:"name"`
	Kind       lock.Kind    `json:"kind"`
	Held       bool         `json:"held"`
	Limit      int          `json:"limit"`
	Holders    []holderJSON `json:"holders"`
	Queue      int          `json:"queue"`
	Waiters    []waiterJSON `json:"waiters"`
	DelayUntil string       `json:"delay_until,omitempty"`
}

// waiterJSON is one request in a name's fair queue, never its token.
type waiterJSON struct {
	Owner string    `json:"owner"`
	Mode  lock.Mode `json:"mode,omitempty"`
}

// waitersJSON shows a queue in order; never null.
func waitersJSON(ws []lock.Waiter) []waiterJSON {
	out := make([]waiterJSON, 0, len(ws))
	for _, w := range ws {
		out = append(out, waiterJSON(w))
	}
	return out
}

// listEntryJSON is a name in a listing: a lock (with its mode) or a
// semaphore (with its limit). Owner, fence and ttl_ms are the highest
// fence's holder's.
type listEntryJSON struct {
	Name       string       `json:"name"`
	Kind       lock.Kind    `json:"kind"`
	Owner      string       `json:"owner"`
	Fence      int64        `json:"fence"`
	TTLMS      int64        `json:"ttl_ms"`
	Mode       *lock.Mode   `json:"mode,omitempty"`
	Limit      *int         `json:"limit,omitempty"`
	Holders    []holderJSON `json:"holders"`
	Queue      int          `json:"queue"`
	DelayUntil string       `json:"delay_until,omitempty"`
}

type listJSON struct {
	Locks      []listEntryJSON `json:"locks"`
	NextCursor string          `json:"next_cursor"`
}

// holdersJSON shows holders, never their tokens; never null.
func holdersJSON(hs []lock.Holder) []holderJSON {
	out := make([]holderJSON, 0, len(hs))
	for _, h := range hs {
		out = append(out, newHolderJSON(h))
	}
	return out
}

func newHolderJSON(h lock.Holder) holderJSON {
	return holderJSON{Owner: h.Owner, Fence: h.Fence, TTLMS: h.TTL.Milliseconds(), Mode: h.Mode}
}

// timeMS is t as the API shows instants: RFC 3339 in UTC with
// milliseconds; "" for the zero time.
func timeMS(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// grantOf reads what every acquire body has: ttl, wait, owner, fair and
// lock_delay. The domain checks their ranges.
func grantOf(ttlField, waitField *string, owner string, fair bool, delayField *string) (lock.Grant, time.Duration, error) {
	ttl, err := parseDuration("ttl", ttlField, lock.DefaultTTL)
	if err != nil {
		return lock.Grant{}, 0, err
	}
	wait, err := parseDuration("wait", waitField, 0)
	if err != nil {
		return lock.Grant{}, 0, err
	}
	delay, err := parseDuration("lock_delay", delayField, 0)
	if err != nil {
		return lock.Grant{}, 0, err
	}
	return lock.Grant{TTL: ttl, Owner: owner, Fair: fair, LockDelay: delay}, wait, nil
}

// acquire is POST /v1/locks/{name}/acquire: one attempt, or waiting up to
// wait for the holders to release or expire.
func (s *server) acquire(c *gin.Context) {
	var req acquireRequest
	if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
		c.Error(err)
		return
	}
	g, wait, err := grantOf(req.TTL, req.Wait, req.Owner, req.Fair, req.LockDelay)
	if err != nil {
		c.Error(err)
		return
	}
	g.Kind, g.Mode = lock.KindLock, lock.Exclusive
	if req.Mode != nil {
		// The domain refuses any other mode; "" it would read as the
		// default, but a field sent empty is a mistake.
		if *req.Mode == "" {
			c.Error(badInput("mode \"\" is neither %q nor %q", lock.Exclusive, lock.Shared))
			return
		}
		g.Mode = lock.Mode(*req.Mode)
	}
	s.grant(c, g, wait)
}

// acquireSemaphore is POST /v1/semaphores/{name}/acquire: one permit of at
// most limit at once, as a lease.
func (s *server) acquireSemaphore(c *gin.Context) {
	var req semaphoreAcquireRequest
	if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
		c.Error(err)
		return
	}
	if req.Limit == nil {
		c.Error(badInput("limit is required: how many may hold the semaphore at once, 1 to %d", lock.MaxLimit))
		return
	}
	if *req.Limit < 1 || *req.Limit > lock.MaxLimit {
		c.Error(badInput("limit %d is outside 1 to %d", *req.Limit, lock.MaxLimit))
		return
	}
	g, wait, err := grantOf(req.TTL, req.Wait, req.Owner, req.Fair, req.LockDelay)
	if err != nil {
		c.Error(err)
		return
	}
	g.Kind, g.Limit = lock.KindSemaphore, int(*req.Limit)
	s.grant(c, g, wait)
}

// grant asks the domain for g on the path's name and answers the lease.
func (s *server) grant(c *gin.Context, g lock.Grant, wait time.Duration) {
	// The domain writes the events (acquired, queued, contended) with the
	// change.
	l, waited, err := s.locks.AcquireWait(c.Request.Context(), c.Param("name"), g, wait)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newLeaseJSON(l, waited))
}

// extend is POST /v1/locks/{name}/extend and /v1/semaphores/{name}/extend:
// the token alone proves the holder, on any replica.
func (s *server) extend(kind lock.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req extendRequest
		if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
			c.Error(err)
			return
		}
		ttl, err := parseDuration("ttl", req.TTL, 0) // 0: the acquire's TTL
		if err != nil {
			c.Error(err)
			return
		}
		if req.TTL != nil && ttl == 0 {
			c.Error(badInput("ttl must be at least %v", lock.MinTTL))
			return
		}
		l, err := s.locks.RenewKind(c.Request.Context(), kind, c.Param("name"), req.Token, ttl)
		if err != nil {
			c.Error(err)
			return
		}
		c.JSON(http.StatusOK, newLeaseJSON(l, 0))
	}
}

// release is POST /v1/locks/{name}/release and
// /v1/semaphores/{name}/release.
func (s *server) release(kind lock.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req releaseRequest
		if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
			c.Error(err)
			return
		}
		if _, err := s.locks.ReleaseKind(c.Request.Context(), kind, c.Param("name"), req.Token); err != nil {
			c.Error(err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// check is POST /v1/locks/{name}/check and /v1/semaphores/{name}/check:
// is this fence a live holder's?
func (s *server) check(kind lock.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		var req checkRequest
		if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
			c.Error(err)
			return
		}
		if req.Fence == nil {
			c.Error(badInput("fence is required"))
			return
		}
		if err := s.locks.CheckKind(c.Request.Context(), kind, c.Param("name"), *req.Fence); err != nil {
			c.Error(err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"current": true})
	}
}

// getLock is GET /v1/locks/{name}. It never shows a token.
func (s *server) getLock(c *gin.Context) {
	name := c.Param("name")
	st, held, err := s.locks.InspectState(c.Request.Context(), lock.KindLock, name)
	if err != nil {
		c.Error(err)
		return
	}
	out := lockJSON{Name: name, Kind: lock.KindLock, Held: held, Mode: st.Mode, Holders: holdersJSON(st.Holders),
		Queue: len(st.Waiters), Waiters: waitersJSON(st.Waiters), DelayUntil: timeMS(st.DelayUntil)}
	if n := len(st.Holders); n > 0 {
		top := st.Holders[n-1]
		out.Owner, out.Fence, out.TTLMS = top.Owner, top.Fence, top.TTL.Milliseconds()
	}
	c.JSON(http.StatusOK, out)
}

// getSemaphore is GET /v1/semaphores/{name}. It never shows a token.
func (s *server) getSemaphore(c *gin.Context) {
	name := c.Param("name")
	st, held, err := s.locks.InspectState(c.Request.Context(), lock.KindSemaphore, name)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, semaphoreJSON{Name: name, Kind: lock.KindSemaphore, Held: held, Limit: st.Limit,
		Holders: holdersJSON(st.Holders), Queue: len(st.Waiters), Waiters: waitersJSON(st.Waiters), DelayUntil: timeMS(st.DelayUntil)})
}

// listLocks is GET /v1/locks?prefix=&limit=&cursor=.
func (s *server) listLocks(c *gin.Context) {
	limit := 0 // the domain's default
	if v, ok := c.GetQuery("limit"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			c.Error(badInput("limit %s is not a whole number from 1 to %d", strconv.Quote(truncate(v, 32)), lock.MaxListLimit))
			return
		}
		limit = n
	}
	entries, next, err := s.locks.List(c.Request.Context(), c.Query("prefix"), limit, c.Query("cursor"))
	if err != nil {
		c.Error(err)
		return
	}
	out := listJSON{Locks: make([]listEntryJSON, 0, len(entries)), NextCursor: next}
	for _, e := range entries {
		out.Locks = append(out.Locks, newListEntryJSON(e))
	}
	c.JSON(http.StatusOK, out)
}

func newListEntryJSON(e lock.Entry) listEntryJSON {
	st := e.State
	out := listEntryJSON{Name: e.Name, Kind: st.Kind, Owner: e.Holder.Owner, Fence: e.Holder.Fence,
		TTLMS: e.Holder.TTL.Milliseconds(), Holders: holdersJSON(st.Holders), Queue: len(st.Waiters),
		DelayUntil: timeMS(st.DelayUntil)}
	if st.Kind == lock.KindSemaphore {
		out.Limit = &st.Limit
	} else {
		out.Kind, out.Mode = lock.KindLock, &st.Mode
	}
	return out
}
