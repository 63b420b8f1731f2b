package httpapi

import "github.com/gin-gonic/gin"

// routes is the whole HTTP API on one screen.
func (s *server) routes(r *gin.Engine) {
	// The README's demo: take lock:ID, work for CRITICAL_SECTION_DURATION,
	// release. Kept exactly as documented, GET and all.
	r.GET("/lock", s.demoLock)

	r.HandleMethodNotAllowed = true
	r.NoRoute(notFound)
	r.NoMethod(methodNotAllowed)
}
