package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/logging"
)

// accessLog writes one record per request after it completes. The text
// format renders it as Gin's familiar access line.
func accessLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		log.LogAttrs(c.Request.Context(), slog.LevelInfo, logging.AccessMessage,
			slog.Int(logging.KeyStatus, c.Writer.Status()),
			slog.Float64(logging.KeySeconds, time.Since(start).Seconds()),
			slog.String(logging.KeyClientIP, c.ClientIP()),
			slog.String(logging.KeyMethod, c.Request.Method),
			slog.String(logging.KeyPath, c.Request.URL.RequestURI()),
		)
	}
}

// recovery turns a panic into a logged 500 with the generic error body, so
// one bad request never takes the process down.
func recovery(log *slog.Logger) gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(io.Discard, func(c *gin.Context, err any) {
		log.ErrorContext(c.Request.Context(), "Error: panic while serving request", "panic", err, "path", c.Request.URL.Path)
		writeError(c, http.StatusInternalServerError, "internal", "internal error")
	})
}
