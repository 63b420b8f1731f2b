// Command lockd is the go-distributed-lock server: the README's GET /lock
// demo over Redis, configured from the environment (and .env).
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/gin-gonic/gin"
	"github.com/joho/godotenv"
	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/logging"
)

// redisLogger sends go-redis's own messages (dial failures, say) to the
// process's slog logger instead of a separate stderr format.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().WarnContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

func main() {
	// The real environment wins over .env, and a missing .env is fine.
	if err := godotenv.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "lockd: .env:", err)
		os.Exit(1)
	}
	// Process-wide settings live here, not in run: libraries that log on
	// their own (go-redis, the standard log package) land in lockd's
	// stream, in LOG_FORMAT (which run validates), and Gin stays quiet.
	slog.SetDefault(logging.New(os.Stdout, os.Getenv("LOG_FORMAT")))
	redis.SetLogger(redisLogger{})
	gin.SetMode(gin.ReleaseMode)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lockd:", err)
		os.Exit(1)
	}
}
