package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/go-distributed-lock/go-distributed-lock/client"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

func TestMain(m *testing.M) {
	gin.SetMode(gin.TestMode)
	goleak.VerifyTestMain(m)
}

// service is a real lockd (its HTTP handler and lock Manager, in this
// process) over a real redis-server.
type service struct {
	URL string
	rdb *redis.Client // for looking behind the service's back

	handler http.Handler
	hs      *httptest.Server
	stop    func()
}

// startLockd runs lockd's handler over the Redis at addr, as cmd/lockd
// wires it, on a free loopback port. It does not depend on testing, so
// Example functions can use it too.
func startLockd(addr string, opts httpapi.Options) (*service, error) {
	return startLockdOn([]string{addr}, opts)
}

// startLockdOn is startLockd over several Redis nodes: independent
// masters, lockd's quorum mode, when there are more than one.
func startLockdOn(addrs []string, opts httpapi.Options) (*service, error) {
	var nodes []*redis.Options
	for _, addr := range addrs {
		nodes = append(nodes, &redis.Options{Addr: addr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
	}
	addr := addrs[0]
	m := lock.New(lock.Config{Nodes: nodes, Logger: slog.New(slog.DiscardHandler)})
	if err := m.Prepare(context.Background()); err != nil {
		_ = m.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	running := make(chan struct{})
	go func() { defer close(running); m.Run(ctx) }()
	opts.LockExpiry, opts.CriticalSection = 30*time.Second, 30*time.Second
	h, err := httpapi.NewHandler(slog.New(slog.DiscardHandler), m, opts)
	if err != nil {
		cancel()
		<-running
		_ = m.Close()
		return nil, err
	}
	s := &service{handler: h, hs: httptest.NewServer(h), rdb: redis.NewClient(&redis.Options{Addr: addr})}
	s.URL = s.hs.URL
	s.stop = func() {
		s.hs.Close()
		cancel()
		<-running
		_ = m.Close()
		_ = s.rdb.Close()
	}
	// Waiters are woken by the release announcement; make sure the
	// Manager listens before anyone releases.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		n, err := s.rdb.PubSubNumSub(context.Background(), lock.ReleasedChannel).Result()
		if err == nil && n[lock.ReleasedChannel] > 0 {
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("lockd's release subscription never started")
		}
	}
}

// startService runs Redis and lockd for t.
func startService(t *testing.T, opts httpapi.Options) *service {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{})
	s, err := startLockd(srv.Addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// down stops serving HTTP (the lock Manager and Redis keep running), as a
// lockd process that exits does; up serves again on the same port.
func (s *service) down() { s.hs.Close() }

func (s *service) up(t *testing.T) {
	t.Helper()
	addr := s.hs.Listener.Addr().String()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen again on %s: %v", addr, err)
		}
	}
	hs := httptest.NewUnstartedServer(s.handler)
	_ = hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	s.hs = hs
}

// newClient returns a client of s with its own transport, whose idle
// connections are closed when the test ends (goleak counts their
// goroutines).
func newClient(t *testing.T, s *service, opts client.Options) *client.Client {
	t.Helper()
	if opts.HTTPClient == nil {
		tr := &http.Transport{}
		t.Cleanup(tr.CloseIdleConnections)
		opts.HTTPClient = &http.Client{Transport: tr}
	}
	c, err := client.New(s.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exampleClient starts Redis and lockd for an Example, and returns a
// client of it; stop ends both.
func exampleClient() (c *client.Client, stop func()) {
	return exampleClientWith(client.Options{})
}

// exampleClientWith is exampleClient with opts.
func exampleClientWith(opts client.Options) (c *client.Client, stop func()) {
	dir, err := os.MkdirTemp("", "client-example")
	if err != nil {
		panic(err)
	}
	srv, err := redistest.Run(dir, redistest.Options{})
	if err != nil {
		panic(err)
	}
	s, err := startLockd(srv.Addr, httpapi.Options{})
	if err != nil {
		panic(err)
	}
	if c, err = client.New(s.URL, opts); err != nil {
		panic(err)
	}
	return c, func() {
		http.DefaultClient.CloseIdleConnections()
		s.stop()
		srv.Stop()
		_ = os.RemoveAll(dir)
	}
}
