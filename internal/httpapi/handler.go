// Package httpapi is lockd's HTTP layer: Gin routes over the lock domain.
// routes.go lists the whole API; demo.go serves the README's GET /lock.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// Options are the HTTP layer's settings.
type Options struct {
	// LockExpiry is the TTL of a demo lock (the README's 30s).
	LockExpiry time.Duration
	// CriticalSection is how long the demo's simulated operation runs.
	CriticalSection time.Duration
}

type server struct {
	log   *slog.Logger
	locks *lock.Manager
	opts  Options
}

// NewHandler returns lockd's HTTP handler. It never touches Redis itself:
// every lock operation goes through locks.
func NewHandler(logger *slog.Logger, locks *lock.Manager, opts Options) http.Handler {
	s := &server{log: logger, locks: locks, opts: opts}
	r := gin.New()
	// Nothing sits in front of lockd by default, so no forwarded header is
	// trusted: the client IP in the logs is the peer's address.
	_ = r.SetTrustedProxies(nil)
	r.Use(accessLog(logger), recovery(logger))
	s.routes(r)
	return r
}
