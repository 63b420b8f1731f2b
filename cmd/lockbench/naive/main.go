// Command naive is a benchmark peer for cmd/lockbench, not part of lockd:
// the lock service one writes in an afternoon with Gin and redsync.
// gin.Default(), one redsync mutex per call with redsync's defaults,
// POST /acquire/:name answering {"token":"..."} and POST /release/:name
// taking {"token":"..."}. No auth, no validation, no waiting beyond
// redsync's own retries, no events. lockbench runs it as its own process
// against the same redis-server as lockd, with REDIS_ADDR and PORT.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, getenv func(string) string) error {
	rdb := redis.NewClient(&redis.Options{Addr: getenv("REDIS_ADDR")})
	defer rdb.Close()
	rs := redsync.New(goredis.NewPool(rdb))

	r := gin.Default()
	r.POST("/acquire/:name", func(c *gin.Context) {
		mu := rs.NewMutex("naive:" + c.Param("name"))
		if err := mu.LockContext(c.Request.Context()); err != nil {
			fail(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"token": mu.Value()})
	})
	r.POST("/release/:name", func(c *gin.Context) {
		var req struct {
			Token string `json:"token"`
		}
		if err := c.ShouldBindJSON(&req); err != nil {
			c.JSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		mu := rs.NewMutex("naive:"+c.Param("name"), redsync.WithValue(req.Token))
		if _, err := mu.UnlockContext(c.Request.Context()); err != nil {
			fail(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	})

	srv := &http.Server{Addr: "127.0.0.1:" + getenv("PORT"), Handler: r}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// fail answers 409 when the lock is someone else's, 500 otherwise.
func fail(c *gin.Context, err error) {
	var taken *redsync.ErrTaken
	if errors.Is(err, redsync.ErrFailed) || errors.Is(err, redsync.ErrLockAlreadyExpired) || errors.As(err, &taken) {
		c.JSON(http.StatusConflict, gin.H{"error": err.Error()})
		return
	}
	c.JSON(http.StatusInternalServerError, gin.H{"error": err.Error()})
}
