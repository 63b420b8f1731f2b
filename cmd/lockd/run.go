package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/logging"
	"github.com/go-distributed-lock/go-distributed-lock/internal/metrics"
	"github.com/go-distributed-lock/go-distributed-lock/internal/tracing"
)

// run wires config -> redis -> lock.Manager -> httpapi -> http.Server and
// serves until ctx ends, then shuts down gracefully. "lockd healthcheck"
// instead asks the local server whether it is ready.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	if len(args) > 1 {
		if args[1] != "healthcheck" || len(args) > 2 {
			return fmt.Errorf("unknown arguments %q; lockd takes none, or: lockd healthcheck", args[1:])
		}
		return healthcheck(ctx, getenv)
	}
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	log := logging.New(stdout, cfg.LogFormat)
	ln, err := net.Listen("tcp", net.JoinHostPort(cfg.ListenAddr, strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	replica := replicaName(cfg.ReplicaName, ln.Addr())
	tp, err := tracing.New(ctx, cfg.Tracing, replica, log)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("tracing: %w", err)
	}
	// After the server has stopped, so the last requests' spans go too;
	// bounded, so an unreachable collector cannot hold the exit up.
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Warn("tracing: spans not sent at shutdown", "err", err)
		}
	}()
	traced := tp.TracerProvider() // nil when off
	m := metrics.New()
	locks := lock.New(lock.Config{
		Nodes: cfg.Redis, Cluster: cfg.RedisCluster, Sentinel: cfg.RedisSentinel,
		MinReplicas: cfg.MinReplicas, ReplicaTimeout: cfg.ReplicaTimeout, MaxTTL: cfg.MaxTTL, MaxWaiters: cfg.MaxWaiters,
		Logger: log, Observer: m, NodeHook: m.RedisHook, Replica: replica, LegacyKeys: cfg.LegacyKeys,
		TracerProvider: traced,
	})
	defer locks.Close()
	// lockd_redis_node_up and lockd_redis_quorum: /readyz's check, asked at each scrape.
	m.WatchRedis(locks)
	draining := make(chan struct{})
	handler, err := httpapi.NewHandler(log, locks, httpapi.Options{
		LockExpiry: cfg.LockExpiry, CriticalSection: cfg.CriticalSection,
		APITokens: cfg.APITokens, MetricsRequireAuth: cfg.MetricsRequireAuth,
		MaxBodyBytes: cfg.MaxBodyBytes, TrustedProxies: cfg.TrustedProxies,
		Metrics: m, Draining: draining,
		Replica: replica, UIPeers: cfg.UIPeers, DemoDisabled: !cfg.DemoEnabled,
		TracerProvider: traced, RecordLockNames: cfg.Tracing.RecordLockNames,
	})
	if err != nil {
		_ = ln.Close()
		return err
	}
	// Handlers' contexts derive from base: cancelling it stops demo
	// critical sections that outlive the shutdown timeout.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := newServer(cfg, handler, base, log)

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

	if n := len(cfg.Redis); n > 1 && n%2 == 0 {
		// A majority of an even number is one more than half: the extra
		// node adds a point of failure and no tolerance.
		log.Warn("quorum mode over an even number of Redis nodes: a lock needs a majority, so this tolerates no more failed nodes than one node fewer would; use 3 or 5",
			"nodes", n, "majority", n/2+1, "tolerated_failures", (n-1)/2)
	}
	log.Info("lockd listening", append([]any{"addr", ln.Addr().String(), "redis", cfg.Addrs(), "db", cfg.RedisDB()},
		redisMode(cfg)...)...)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}

	log.Info("lockd shutting down", "timeout", cfg.ShutdownTimeout.String())
	// Readiness fails first so load balancers drain; waiters are answered
	// at once (they may try another replica); /v1 leases are left alone.
	close(draining)
	locks.StopWaiting()
	if err := shutdown(srv, cfg.ShutdownTimeout, cancelBase); err != nil {
		return err
	}
	<-served
	log.Info("lockd stopped")
	return nil
}

// redisMode describes how lockd reaches Redis, for its startup line: the
// mode, the master's name in Sentinel mode, and the replicas each write
// waits for. Never credentials.
func redisMode(cfg config.Config) []any {
	attrs := []any{"mode", cfg.RedisMode()}
	if cfg.RedisSentinel != nil {
		attrs = append(attrs, "master", cfg.RedisSentinel.MasterName)
	}
	if cfg.MinReplicas > 0 {
		attrs = append(attrs, "min_replicas", cfg.MinReplicas, "replica_timeout", cfg.ReplicaTimeout.String())
	}
	return attrs
}

// newServer is lockd's http.Server: handlers' contexts derive from base,
// and slow clients are cut off; the write timeout outlasts the longest
// wait and the demo's critical section (config checks).
func newServer(cfg config.Config, handler http.Handler, base context.Context, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		BaseContext:       func(net.Listener) context.Context { return base },
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// shutdown lets in-flight requests finish within timeout; past it, it
// cancels what still runs (cancelBase: the demo handler then releases its
// lock) and waits up to 5 s more for that.
func shutdown(srv *http.Server, timeout time.Duration, cancelBase context.CancelFunc) error {
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	cancelBase()
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer fcancel()
	return srv.Shutdown(fctx)
}

// replicaName is REPLICA_NAME, or hostname:port, or failing a hostname the
// listen address: two replicas on one host still differ by port.
func replicaName(configured string, addr net.Addr) string {
	if configured != "" {
		return configured
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		return addr.String()
	}
	if tcp, ok := addr.(*net.TCPAddr); ok {
		return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
	}
	return addr.String()
}

// prepare loads the lock scripts into Redis, retrying while Redis is
// unreachable: lockd starts and serves before Redis is up (compose may start
// it first), and requests meanwhile fail with Redis's error.
func prepare(ctx context.Context, log *slog.Logger, locks *lock.Manager, cfg config.Config) {
	delay := 100 * time.Millisecond
	for {
		err := locks.Prepare(ctx)
		if err == nil {
			log.Info("Redis ready", "addr", cfg.Addrs(), "db", cfg.RedisDB())
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

// healthcheck asks the local lockd's /readyz, for container healthchecks in
// an image without a shell or curl. It returns nil when ready. It asks for
// the details (?verbose, with the first API token if there are any), so a
// failure says which node failed and why.
func healthcheck(ctx context.Context, getenv func(string) string) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(localHost(cfg.ListenAddr), strconv.Itoa(cfg.Port)) + "/readyz?verbose"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if len(cfg.APITokens) > 0 {
		req.Header.Set("Authorization", "Bearer "+cfg.APITokens[0])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer resp.Body.Close()
	var body struct{ Reason, Detail string }
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body)
	if resp.StatusCode != http.StatusOK {
		if body.Detail == "" {
			body.Detail = body.Reason
		}
		return fmt.Errorf("not ready (%d): %s", resp.StatusCode, body.Detail)
	}
	return nil
}

// localHost is where healthcheck finds lockd: the loopback address when it
// listens on every interface, else the address it listens on.
func localHost(listen string) string {
	if ip := net.ParseIP(listen); listen == "" || (ip != nil && ip.IsUnspecified()) {
		return "127.0.0.1"
	}
	return listen
}
