package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// routes is the whole HTTP API on one screen.
func (s *server) routes(r *gin.Engine) {
	// The README's demo: take lock:ID, work for CRITICAL_SECTION_DURATION,
	// release. Kept exactly as documented, GET and all, while no API token
	// is set. It takes the same lock:NAME keys as /v1, so with tokens it
	// needs one too; DEMO_ENABLED=false removes it.
	if !s.opts.DemoDisabled {
		demo := []gin.HandlerFunc{s.demoLock}
		if len(s.opts.APITokens) > 0 {
			demo = append([]gin.HandlerFunc{requireToken(s.opts.APITokens)}, demo...)
		}
		r.GET("/lock", demo...)
	}

	// Probes and metrics, for orchestrators and Prometheus; never behind
	// the API tokens, except /metrics when METRICS_REQUIRE_AUTH is set.
	getHead(r, "/healthz", s.healthz)
	getHead(r, "/readyz", s.readyz)
	if s.opts.Metrics != nil {
		metrics := []gin.HandlerFunc{gin.WrapH(s.opts.Metrics.Handler())}
		if s.opts.MetricsRequireAuth && len(s.opts.APITokens) > 0 {
			metrics = append([]gin.HandlerFunc{requireToken(s.opts.APITokens)}, metrics...)
		}
		getHead(r, "/metrics", metrics...)
	}

	// The lock service (doc/openapi.yaml). It shares the demo's lock
	// namespace: lock:NAME.
	v1 := r.Group("/v1")
	if len(s.opts.APITokens) > 0 {
		v1.Use(requireToken(s.opts.APITokens))
	}
	v1.Use(mapErrors(s.log))
	getHead(v1, "/locks", s.listLocks) // semaphores too
	getHead(v1, "/locks/:name", s.getLock)
	v1.POST("/locks/:name/acquire", s.acquire)
	v1.POST("/locks/:name/extend", s.extend(lock.KindLock))
	v1.POST("/locks/:name/release", s.release(lock.KindLock))
	v1.POST("/locks/:name/check", s.check(lock.KindLock))
	getHead(v1, "/semaphores/:name", s.getSemaphore)
	v1.POST("/semaphores/:name/acquire", s.acquireSemaphore)
	v1.POST("/semaphores/:name/extend", s.extend(lock.KindSemaphore))
	v1.POST("/semaphores/:name/release", s.release(lock.KindSemaphore))
	v1.POST("/semaphores/:name/check", s.check(lock.KindSemaphore))
	v1.GET("/events", s.events)

	// The dashboard: one embedded page, open; it asks for an API token
	// when /v1 needs one, and config.json names the peers only to a
	// caller with one.
	r.GET("/", func(c *gin.Context) { c.Redirect(http.StatusFound, "/ui/") })
	r.GET("/ui", func(c *gin.Context) { c.Redirect(http.StatusMovedPermanently, "/ui/") })
	r.GET("/ui/*file", s.ui)

	// An API answers the path it was asked; a redirect from /v1/locks/ to
	// /v1/locks would surprise clients that do not follow it for POST.
	r.RedirectTrailingSlash = false
	r.HandleMethodNotAllowed = true
	r.NoRoute(notFound)
	r.NoMethod(methodNotAllowed)
}

// getHead routes GET and HEAD to h: HTTP asks every server to answer HEAD
// wherever it answers GET, and probes and monitors (curl -I, uptime
// checkers) send it. net/http drops the body of a HEAD answer and keeps
// its headers. The demo's GET /lock (which takes a lock) and the
// /v1/events stream (which never ends) answer GET only.
func getHead(r gin.IRoutes, path string, h ...gin.HandlerFunc) {
	r.GET(path, h...)
	r.HEAD(path, h...)
}
