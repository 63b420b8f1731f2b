package lock

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// sentinelManager is a prepared, running Manager over the Sentinel set s.
func sentinelManager(t *testing.T, s *procs.SentinelSet, replica string) *Manager {
	t.Helper()
	m := New(Config{Sentinel: s.FailoverOptions(), Replica: replica})
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	listen(t, m)
	return m
}

// handOff has b wait for name, held by l, and a release it: the waiter
// must be woken by the release (the lease's TTL is longer than the wait).
func handOff(t *testing.T, a, b *Manager, l Lease) Lease {
	t.Helper()
	ctx := context.Background()
	got := make(chan error, 1)
	var next Lease
	go func() {
		var err error
		next, _, err = b.AcquireWait(ctx, l.Name, Grant{TTL: 5 * time.Second}, 10*time.Second)
		got <- err
	}()
	for b.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := a.ReleaseToken(ctx, l.Name, l.Token); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("%s: waiter: %v", l.Name, err)
	}
	if next.Fence <= l.Fence {
		t.Fatalf("%s: fence %d after %d", l.Name, next.Fence, l.Fence)
	}
	return next
}

// TestSentinelEveryOperationAndFailover runs the lock operations over a
// Sentinel-managed master with two replicas of lockd, then kills the
// master: once Sentinel has promoted a replica, locks are granted again
// with higher fences, and waiters are still woken across replicas.
func TestSentinelEveryOperationAndFailover(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, procs.SentinelOptions{})
	a := sentinelManager(t, s, "a")
	b := sentinelManager(t, s, "b")
	ctx := context.Background()
	if ok, h := a.Health(ctx, time.Second); !ok {
		t.Fatalf("health: %+v", h)
	}

	l, err := a.TryAcquire(ctx, "s:1", Grant{TTL: 20 * time.Second, Owner: "a"})
	if err != nil {
		t.Fatal(err)
	}
	var locked *LockedError
	if _, err := b.TryAcquire(ctx, "s:1", Grant{TTL: time.Second}); !errors.As(err, &locked) || locked.Holder.Owner != "a" {
		t.Fatalf("second acquire: %v", err)
	}
	if l, err = b.Renew(ctx, "s:1", l.Token, 0); err != nil {
		t.Fatal(err)
	}
	if page, _, err := b.List(ctx, "s:", 10, ""); err != nil || len(page) != 1 {
		t.Fatalf("list: %v %v", page, err)
	}
	next := handOff(t, a, b, l)
	if err := b.ReleaseToken(ctx, "s:1", next.Token); err != nil {
		t.Fatal(err)
	}

	held, err := a.TryAcquire(ctx, "s:2", Grant{TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	old := must(s.Master())
	old.Kill()
	if _, err := s.WaitFailover(old, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// go-redis learns of the new master from the sentinels; until then a
	// call may fail as unavailable, never otherwise.
	var after Lease
	deadline := time.Now().Add(15 * time.Second)
	for {
		after, err = a.TryAcquire(ctx, "s:3", Grant{TTL: 20 * time.Second})
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after the failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.Fence <= held.Fence {
		t.Fatalf("fence %d after the failover, %d before", after.Fence, held.Fence)
	}
	handOff(t, a, b, after)
	if ok, h := b.Health(ctx, time.Second); !ok {
		t.Fatalf("health after the failover: %+v", h)
	}
}

// TestSentinelFairGrantWaitsForReplicas: with MinReplicas, a grant the
// releasing script made to a fair waiter is answered only once the
// replicas have it; a shared waiter queued behind an exclusive holder is
// granted with its fellow shared waiter in one step.
func TestSentinelFairGrantWaitsForReplicas(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, procs.SentinelOptions{})
	m := New(Config{Sentinel: s.FailoverOptions(), Replica: "a", MinReplicas: 2})
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	listen(t, m)
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "f", Grant{TTL: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Lease, 2)
	for range 2 {
		go func() {
			l, _, err := m.AcquireWait(ctx, "f", Grant{TTL: 20 * time.Second, Mode: Shared, Fair: true}, 10*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
	}
	waitFor(t, func() bool { st, _, _ := m.InspectState(ctx, KindLock, "f"); return len(st.Waiters) == 2 })
	if err := m.ReleaseToken(ctx, "f", l.Token); err != nil {
		t.Fatal(err)
	}
	a, b := <-got, <-got
	if a.Mode != Shared || b.Mode != Shared || a.Fence == b.Fence {
		t.Fatalf("shared grants: %+v %+v", a, b)
	}
	// Both grants are on the replicas already.
	for _, r := range s.Nodes[1:] {
		rdb := redis.NewClient(r.ClientOptions(0))
		v, err := rdb.Get(ctx, KeyPrefix+"f").Result()
		_ = rdb.Close()
		if err != nil || !strings.Contains(v, a.Token) || !strings.Contains(v, b.Token) {
			t.Fatalf("replica %s: %q %v", r.Addr, v, err)
		}
	}
}

// TestSentinelFairGrantUnackedIsGivenBack: replicas that do not answer
// (paused) cannot acknowledge a grant from the queue: the waiter is told
// 503 and the grant is given back, not left to hold the name.
func TestSentinelFairGrantUnackedIsGivenBack(t *testing.T) {
	t.Parallel()
	s := redistest.StartSentinel(t, procs.SentinelOptions{})
	m := New(Config{Sentinel: s.FailoverOptions(), Replica: "a", MinReplicas: 1, ReplicaTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = m.Close() })
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	listen(t, m)
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "u", Grant{TTL: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, _, err := m.AcquireWait(ctx, "u", Grant{TTL: 20 * time.Second, Fair: true}, 10*time.Second)
		got <- err
	}()
	waitFor(t, func() bool { st, _, _ := m.InspectState(ctx, KindLock, "u"); return len(st.Waiters) == 1 })
	for _, r := range s.Nodes[1:] {
		if err := r.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = r.Signal(syscall.SIGCONT) }()
	}
	if err := m.ReleaseToken(ctx, "u", l.Token); err != nil {
		t.Fatal(err)
	}
	if err := <-got; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a grant no replica acknowledged: %v, want unavailable", err)
	}
	if _, held, err := m.Inspect(ctx, "u"); err != nil || held {
		t.Fatalf("the unacknowledged grant still holds the name: %v %v", held, err)
	}
}
