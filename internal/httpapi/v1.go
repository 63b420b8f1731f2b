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
// send time + waited_ms + ttl_ms never overestimates its validity.
type leaseJSON struct {
	Name      string    `json:"name"`
	Token     string    `json:"token"`
	Fence     int64     `json:"fence"`
	Owner     string    `json:"owner"`
	TTLMS     int64     `json:"ttl_ms"`
	WaitedMS  int64     `json:"waited_ms"`
	ExpiresAt time.Time `json:"expires_at"`
}

func newLeaseJSON(l lock.Lease, waited time.Duration) leaseJSON {
	return leaseJSON{
		Name: l.Name, Token: l.Token, Fence: l.Fence, Owner: l.Owner,
		TTLMS:     max(time.Until(l.Until).Milliseconds(), 0),
		WaitedMS:  waited.Milliseconds(),
		ExpiresAt: l.Until.UTC().Truncate(time.Millisecond),
	}
}

type lockJSON struct {
	Name  string `json:"name"`
	Held  bool   `json:"held"`
	Owner string `json:"owner"`
	Fence int64  `json:"fence"`
	TTLMS int64  `json:"ttl_ms"`
}

type listEntryJSON struct {
	Name  string `json:"name"`
	Owner string `json:"owner"`
	Fence int64  `json:"fence"`
	TTLMS int64  `json:"ttl_ms"`
}

type listJSON struct {
	Locks      []listEntryJSON `json:"locks"`
	NextCursor string          `json:"next_cursor"`
}

// acquire is POST /v1/locks/{name}/acquire: one attempt, or waiting up to
// wait for the holder to release or expire.
func (s *server) acquire(c *gin.Context) {
	var req acquireRequest
	if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
		c.Error(err)
		return
	}
	ttl, err := parseDuration("ttl", req.TTL, lock.DefaultTTL)
	if err != nil {
		c.Error(err)
		return
	}
	wait, err := parseDuration("wait", req.Wait, 0)
	if err != nil {
		c.Error(err)
		return
	}
	// The domain writes the events (acquired, contended) with the change.
	l, waited, err := s.locks.AcquireWait(c.Request.Context(), c.Param("name"), lock.Grant{TTL: ttl, Owner: req.Owner}, wait)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newLeaseJSON(l, waited))
}

// extend is POST /v1/locks/{name}/extend: the token alone proves the
// holder, on any replica.
func (s *server) extend(c *gin.Context) {
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
	l, err := s.locks.Renew(c.Request.Context(), c.Param("name"), req.Token, ttl)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, newLeaseJSON(l, 0))
}

// release is POST /v1/locks/{name}/release.
func (s *server) release(c *gin.Context) {
	var req releaseRequest
	if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
		c.Error(err)
		return
	}
	if err := s.locks.ReleaseToken(c.Request.Context(), c.Param("name"), req.Token); err != nil {
		c.Error(err)
		return
	}
	c.Status(http.StatusNoContent)
}

// check is POST /v1/locks/{name}/check: is this fence the live holder's?
func (s *server) check(c *gin.Context) {
	var req checkRequest
	if err := readBody(c.Writer, c.Request, s.opts.MaxBodyBytes, &req); err != nil {
		c.Error(err)
		return
	}
	if req.Fence == nil {
		c.Error(badInput("fence is required"))
		return
	}
	if err := s.locks.Check(c.Request.Context(), c.Param("name"), *req.Fence); err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"current": true})
}

// getLock is GET /v1/locks/{name}. It never shows the token.
func (s *server) getLock(c *gin.Context) {
	name := c.Param("name")
	h, held, err := s.locks.Inspect(c.Request.Context(), name)
	if err != nil {
		c.Error(err)
		return
	}
	c.JSON(http.StatusOK, lockJSON{Name: name, Held: held, Owner: h.Owner, Fence: h.Fence, TTLMS: h.TTL.Milliseconds()})
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
		out.Locks = append(out.Locks, listEntryJSON{Name: e.Name, Owner: e.Holder.Owner, Fence: e.Holder.Fence, TTLMS: e.Holder.TTL.Milliseconds()})
	}
	c.JSON(http.StatusOK, out)
}
