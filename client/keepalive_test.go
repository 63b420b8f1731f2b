package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
)

// keptLease starts a service and takes name on it with ttl, kept alive
// with opts until the test ends or the test stops it.
func keptLease(t *testing.T, name string, ttl time.Duration, opts client.KeepAliveOptions) (*service, *client.Client, *client.Lease) {
	t.Helper()
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	l := acquire(t, c, name, client.AcquireOptions{TTL: ttl})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l.KeepAlive(ctx, opts)
	return s, c, l
}

func TestKeepAliveOutlivesManyTTLs(t *testing.T) {
	_, c, l := keptLease(t, "long-job", 300*time.Millisecond, client.KeepAliveOptions{})

	select {
	case <-l.Done():
		t.Fatalf("lease ended while renewed: %v", l.Err())
	case <-time.After(2 * time.Second):
	}
	info, err := c.Get(context.Background(), "long-job")
	if err != nil || !info.Held || info.Fence != l.Fence() {
		t.Fatalf("after 2s: %+v %v, want still ours", info, err)
	}
	if _, err := c.Acquire(context.Background(), "long-job", client.AcquireOptions{}); !errors.Is(err, client.ErrLocked) {
		t.Errorf("someone else got it: %v", err)
	}
	release(t, l)
	if !errors.Is(l.Err(), client.ErrReleased) {
		t.Errorf("Err %v, want ErrReleased", l.Err())
	}
}

func TestLossNoticedWithinOneRenewal(t *testing.T) {
	const ttl = 600 * time.Millisecond
	s, _, l := keptLease(t, "deleted", ttl, client.KeepAliveOptions{})
	time.Sleep(ttl) // a renewal or two first

	deleted := time.Now()
	if err := s.rdb.Del(context.Background(), "lock:deleted").Err(); err != nil {
		t.Fatal(err)
	}
	took := waitDone(t, l, deleted, 2*ttl)
	if limit := ttl/3 + 100*time.Millisecond; took > limit {
		t.Errorf("loss noticed after %v, want within one renewal interval (%v)", took, limit)
	}
	if err := l.Err(); !errors.Is(err, client.ErrLost) || !errors.Is(err, client.ErrNotHolder) {
		t.Errorf("Err %v, want ErrLost wrapping ErrNotHolder", err)
	}
	if cause := context.Cause(l.Context()); !errors.Is(cause, client.ErrLost) {
		t.Errorf("Context cause %v, want ErrLost", cause)
	}
	if err := l.Extend(context.Background()); !errors.Is(err, client.ErrLost) {
		t.Errorf("Extend after loss: %v, want the loss", err)
	}
	if err := l.Release(context.Background()); !errors.Is(err, client.ErrNotHolder) {
		t.Errorf("Release after loss: %v, want ErrNotHolder", err)
	}
}

func TestKeepAliveSurvivesLockdRestart(t *testing.T) {
	const ttl = time.Second
	s, _, l := keptLease(t, "restart", ttl, client.KeepAliveOptions{})
	time.Sleep(ttl / 2)

	s.down()
	time.Sleep(ttl / 2) // at least one renewal fails meanwhile
	s.up(t)

	select {
	case <-l.Done():
		t.Fatalf("lease ended across the restart: %v", l.Err())
	case <-time.After(2 * ttl):
	}
	release(t, l)
}

func TestLossWhenLockdStaysDown(t *testing.T) {
	const ttl = 600 * time.Millisecond
	s, _, l := keptLease(t, "gone", ttl, client.KeepAliveOptions{})
	s.down()
	defer s.up(t)

	until := l.Until()
	waitDone(t, l, time.Now(), 2*ttl)
	if time.Now().Before(until) {
		t.Errorf("ended before its validity ran out (%v early)", time.Until(until))
	}
	if err := l.Err(); !errors.Is(err, client.ErrLost) || !errors.Is(err, client.ErrExpired) || !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Err %v, want ErrLost, ErrExpired and the last ErrUnavailable", err)
	}
}

// TestLossWhenLockdHangs: renewals that get no answer before the lease's
// validity runs out end it as unavailable, as a lockd that is down does
// (an attempt cut off by the validity used to end it with a bare
// "context deadline exceeded").
func TestLossWhenLockdHangs(t *testing.T) {
	const ttl = 600 * time.Millisecond
	s := startService(t, httpapi.Options{})
	var hang atomic.Bool
	stop := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() && strings.HasSuffix(r.URL.Path, "/extend") {
			select {
			case <-r.Context().Done():
			case <-stop:
			}
			return
		}
		s.handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	t.Cleanup(func() { close(stop) }) // before front.Close, which waits for the handlers
	c := newClient(t, &service{URL: front.URL}, client.Options{})
	l := acquire(t, c, "hung", client.AcquireOptions{TTL: ttl})
	hang.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	l.KeepAlive(ctx, client.KeepAliveOptions{})

	waitDone(t, l, time.Now(), 2*ttl)
	if err := l.Err(); !errors.Is(err, client.ErrLost) || !errors.Is(err, client.ErrExpired) || !errors.Is(err, client.ErrUnavailable) {
		t.Errorf("Err %v, want ErrLost, ErrExpired and the last ErrUnavailable", err)
	}
}

func TestMaxHold(t *testing.T) {
	start := time.Now()
	_, _, l := keptLease(t, "max-hold", 300*time.Millisecond, client.KeepAliveOptions{MaxHold: 700 * time.Millisecond})
	took := waitDone(t, l, start, 2*time.Second)
	if took < 700*time.Millisecond || took > 1200*time.Millisecond {
		t.Errorf("ended after %v, want about 700ms", took)
	}
	if !errors.Is(l.Err(), client.ErrMaxHold) {
		t.Errorf("Err %v, want ErrMaxHold", l.Err())
	}
	// Still valid for the rest of its TTL: the owner releases it.
	if err := l.Release(context.Background()); err != nil {
		t.Errorf("release after MaxHold: %v", err)
	}
}

func TestKeepAliveStopsWithItsContext(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	l := acquire(t, c, "ctx-end", client.AcquireOptions{TTL: 300 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	l.KeepAlive(ctx, client.KeepAliveOptions{})
	time.Sleep(400 * time.Millisecond)
	cancel()
	// No more renewals: the lease runs out by itself.
	waitDone(t, l, time.Now(), time.Second)
	if err := l.Err(); !errors.Is(err, client.ErrExpired) {
		t.Errorf("Err %v, want ErrExpired", err)
	}
	// The client gives up a little before the key expires in Redis (the
	// drift margin): the service frees it a moment later.
	time.Sleep(50 * time.Millisecond)
	info, err := c.Get(context.Background(), "ctx-end")
	if err != nil || info.Held {
		t.Errorf("after expiry: %+v %v, want free", info, err)
	}
}
