package lock

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// listen runs m.Run for the test and waits until its subscriptions are on.
func listen(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	for _, n := range m.nodes {
		for {
			subs, err := n.client.PubSubNumSub(context.Background(), ReleasedChannel).Result()
			if err != nil {
				t.Fatal(err)
			}
			if subs[ReleasedChannel] > 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// TestWaiterWokenByReleaseOnAnotherReplica: a waiter on replica B gets the
// lock as soon as replica A releases it, long before the holder's 30s TTL.
func TestWaiterWokenByReleaseOnAnotherReplica(t *testing.T) {
	t.Parallel()
	a, _, srv := setup(t)
	b := replica(t, srv)
	listen(t, b)
	ctx := context.Background()

	held, err := a.TryAcquire(ctx, "handoff", Grant{TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l      Lease
		waited time.Duration
		err    error
	}
	got := make(chan result, 1)
	go func() {
		l, waited, err := b.AcquireWait(ctx, "handoff", Grant{TTL: time.Second}, 20*time.Second)
		got <- result{l, waited, err}
	}()
	for b.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := a.ReleaseToken(ctx, "handoff", held.Token); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil || r.l.Fence <= held.Fence {
			t.Fatalf("waiter got %+v, %v", r.l, r.err)
		}
		t.Logf("waited %v", r.waited)
	case <-time.After(10 * time.Second):
		t.Fatal("waiter was not woken by the release (it would have waited for the 30s TTL)")
	}
	if b.Waiting() != 0 {
		t.Fatalf("%d waiters left registered", b.Waiting())
	}
}

// TestWaiterTakesOverAtExpiry: without any release, the waiter tries again
// when the holder's lease runs out.
func TestWaiterTakesOverAtExpiry(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	held, err := m.TryAcquire(ctx, "abandoned", Grant{TTL: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l, waited, err := m.AcquireWait(ctx, "abandoned", Grant{TTL: time.Second}, 10*time.Second)
	if err != nil || l.Fence <= held.Fence {
		t.Fatalf("got %+v %v", l, err)
	}
	if waited < 300*time.Millisecond {
		t.Fatalf("granted after %v, before the holder's lease ended", waited)
	}
}

func TestWaitRunsOut(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	if _, err := m.TryAcquire(ctx, "long", Grant{TTL: 30 * time.Second, Owner: "holder"}); err != nil {
		t.Fatal(err)
	}
	_, waited, err := m.AcquireWait(ctx, "long", Grant{TTL: time.Second}, 300*time.Millisecond)
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.Owner != "holder" {
		t.Fatalf("got %v, want *LockedError naming the holder", err)
	}
	if waited < 300*time.Millisecond {
		t.Fatalf("gave up after %v, before the wait ran out", waited)
	}
	if m.Waiting() != 0 {
		t.Fatal("waiter left registered")
	}
}

func TestWaiterLeavesWhenCallerGoes(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	if _, err := m.TryAcquire(context.Background(), "gone", Grant{TTL: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, _, err := m.AcquireWait(ctx, "gone", Grant{TTL: time.Second}, time.Minute)
		errc <- err
	}()
	for m.Waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	time.Sleep(2500 * time.Millisecond) // past the holder's TTL
	if n := rdb.Exists(context.Background(), "lock:gone").Val(); n != 0 {
		t.Fatal("a waiter that left took the lock anyway")
	}
}

// TestManyWaitersTakeTurns: a release wakes one waiter of the replica, which
// releases in turn; all get the lock long before the 30s TTLs.
func TestManyWaitersTakeTurns(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	listen(t, m)
	takeTurns(t, "queue", 10, m)
}

// TestWaitersOnTwoReplicasTakeTurns: with several waiters on each of two
// replicas, every release that someone waits for is announced, even
// though a woken waiter that wins leaves others of its replica behind and
// an uncontended release announces nothing. Half of the leases are
// released on the replica that did not grant them, which must then
// announce it for the granting one's expiry watcher.
func TestWaitersOnTwoReplicasTakeTurns(t *testing.T) {
	t.Parallel()
	m, _, s := setup(t)
	other := replica(t, s)
	listen(t, m)
	listen(t, other)
	for {
		subs, err := m.nodes[0].client.PubSubNumSub(context.Background(), ReleasedChannel).Result()
		if err != nil {
			t.Fatal(err)
		}
		if subs[ReleasedChannel] >= 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	takeTurns(t, "turns", 5, m, other)
}

// takeTurns has perReplica waiters on each replica wait for name, held by
// the first replica for 30 s, and release it as soon as they get it (on
// the next replica when their fence is even); every waiter must get it
// long before that TTL, which is what a waiter left unwoken would wait.
func takeTurns(t *testing.T, name string, perReplica int, replicas ...*Manager) {
	t.Helper()
	ctx := context.Background()
	first, err := replicas[0].TryAcquire(ctx, name, Grant{TTL: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var fences []int64
	for i, r := range replicas {
		for range perReplica {
			wg.Go(func() {
				l, _, err := r.AcquireWait(ctx, name, Grant{TTL: 30 * time.Second}, 25*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fences = append(fences, l.Fence)
				mu.Unlock()
				rel := r
				if l.Fence%2 == 0 {
					rel = replicas[(i+1)%len(replicas)]
				}
				if err := rel.ReleaseToken(ctx, name, l.Token); err != nil {
					t.Error(err)
				}
			})
		}
	}
	for _, r := range replicas {
		for r.Waiting() < perReplica {
			time.Sleep(time.Millisecond)
		}
	}
	if err := replicas[0].ReleaseToken(ctx, name, first.Token); err != nil {
		t.Fatal(err)
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(20 * time.Second):
		t.Fatal("waiters were not handed the lock on release")
	}
	if want := perReplica * len(replicas); len(fences) != want {
		t.Fatalf("%d of %d waiters got the lock", len(fences), want)
	}
}
