package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/logging"
)

// run wires config -> redis -> lock.Manager -> httpapi -> http.Server and
// serves until ctx ends, then shuts down gracefully.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout, _ io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := logging.New(stdout, cfg.LogFormat)
	// Libraries that log on their own (go-redis, the standard log package)
	// land in the same stream, in the same format.
	slog.SetDefault(log)
	gin.SetMode(gin.ReleaseMode)

	for _, o := range cfg.Redis {
		// Bounded dials and reads: a dead node costs at most this, and in
		// quorum mode the others answer meanwhile.
		o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	}
	locks := lock.New(lock.Config{Nodes: cfg.Redis, MaxTTL: cfg.MaxTTL, Logger: log})
	defer locks.Close()

	ln, err := net.Listen("tcp", ":"+strconv.Itoa(cfg.Port))
	if err != nil {
		return err
	}
	// Handlers' contexts derive from base: cancelling it stops demo
	// critical sections that outlive the shutdown timeout.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler: httpapi.NewHandler(log, locks, httpapi.Options{
			LockExpiry: cfg.LockExpiry, CriticalSection: cfg.CriticalSection,
		}),
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: 10 * time.Second,
	}

	prepared := make(chan struct{})
	go func() {
		defer close(prepared)
		prepare(ctx, log, locks, cfg)
	}()
	defer func() { <-prepared }()
	// One subscription per replica wakes this replica's /v1 waiters when a
	// lock is released anywhere.
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		locks.Run(ctx)
	}()
	defer func() { <-listening }()

	log.Info("lockd listening", "addr", ln.Addr().String(), "redis", cfg.Addrs(), "db", cfg.Redis[0].DB)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	log.Info("lockd shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); errors.Is(err, context.DeadlineExceeded) {
		// Cancel what is still running; the demo handler then releases its
		// lock, and a second Shutdown waits for that.
		cancelBase()
		fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer fcancel()
		err = srv.Shutdown(fctx)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	<-served
	log.Info("lockd stopped")
	return nil
}

// prepare loads the lock scripts into Redis, retrying while Redis is
// unreachable: lockd starts and serves before Redis is up (compose may start
// it first), and requests meanwhile fail with Redis's error.
func prepare(ctx context.Context, log *slog.Logger, locks *lock.Manager, cfg config.Config) {
	delay := 100 * time.Millisecond
	for {
		err := locks.Prepare(ctx)
		if err == nil {
			log.Info("Redis ready", "addr", cfg.Addrs(), "db", cfg.Redis[0].DB)
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Error("Redis not ready, retrying", "addr", cfg.Addrs(), "retry_in", delay.String(), "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 5*time.Second)
	}
}
