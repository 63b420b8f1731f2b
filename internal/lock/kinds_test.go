package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// keyLeft fails t when name's key is still in Redis.
func keyLeft(t *testing.T, rdb *redis.Client, name string) {
	t.Helper()
	n, err := rdb.Exists(context.Background(), KeyPrefix+name).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		v, _ := rdb.Get(context.Background(), KeyPrefix+name).Result()
		t.Fatalf("key of %q left behind: %q", name, v)
	}
}

func sem(limit int) Grant {
	return Grant{TTL: 10 * time.Second, Kind: KindSemaphore, Limit: limit, Owner: "w"}
}

func TestSemaphoreGrantsUpToItsLimit(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	var leases []Lease
	for i := range 3 {
		l, err := m.TryAcquire(ctx, "pool", sem(3))
		if err != nil {
			t.Fatalf("permit %d: %v", i, err)
		}
		if len(leases) > 0 && l.Fence <= leases[len(leases)-1].Fence {
			t.Fatalf("fence %d not above %d", l.Fence, leases[len(leases)-1].Fence)
		}
		leases = append(leases, l)
	}
	_, err := m.TryAcquire(ctx, "pool", sem(3))
	var le *LockedError
	if !errors.As(err, &le) || len(le.Holders) != 3 || le.Limit != 3 || le.Kind != KindSemaphore {
		t.Fatalf("fourth permit: %v (%+v), want refused with 3 holders of limit 3", err, le)
	}
	var lm *LimitMismatchError
	if _, err := m.TryAcquire(ctx, "pool", sem(4)); !errors.As(err, &lm) || lm.Limit != 3 {
		t.Fatalf("limit 4 on a limit-3 semaphore: %v, want limit_mismatch 3", err)
	}
	var km *KindMismatchError
	if _, err := m.TryAcquire(ctx, "pool", Grant{TTL: time.Second}); !errors.As(err, &km) || km.Kind != KindSemaphore {
		t.Fatalf("lock on a semaphore: %v, want kind mismatch", err)
	}
	if _, err := m.Renew(ctx, "pool", leases[0].Token, 0); !errors.As(err, &km) {
		t.Fatalf("lock extend on a semaphore: %v, want kind mismatch", err)
	}
	if _, err := m.RenewKind(ctx, KindSemaphore, "pool", leases[0].Token, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckKind(ctx, KindSemaphore, "pool", leases[1].Fence); err != nil {
		t.Fatalf("check of a live permit's fence: %v", err)
	}
	st, held, err := m.InspectState(ctx, KindSemaphore, "pool")
	if err != nil || !held || len(st.Holders) != 3 || st.Limit != 3 {
		t.Fatalf("inspect: %+v %v %v", st, held, err)
	}
	if _, err := m.ReleaseKind(ctx, KindSemaphore, "pool", leases[1].Token); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckKind(ctx, KindSemaphore, "pool", leases[1].Fence); !errors.Is(err, ErrStaleFence) {
		t.Fatalf("check of a released permit's fence: %v", err)
	}
	if _, err := m.TryAcquire(ctx, "pool", sem(3)); err != nil {
		t.Fatalf("a released permit is free again: %v", err)
	}
	// A lock is not a semaphore either.
	if _, err := m.TryAcquire(ctx, "plain", Grant{TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.TryAcquire(ctx, "plain", sem(2)); !errors.As(err, &km) || km.Kind != KindLock {
		t.Fatalf("semaphore on a lock: %v, want kind mismatch", err)
	}
	for _, tok := range []string{leases[0].Token, leases[2].Token} {
		if _, err := m.ReleaseKind(ctx, KindSemaphore, "pool", tok); err != nil {
			t.Fatal(err)
		}
	}
	st, _, _ = m.InspectState(ctx, KindSemaphore, "pool")
	if len(st.Holders) != 1 {
		t.Fatalf("%d holders left, want 1", len(st.Holders))
	}
}

func TestSemaphoreLeavesNoKey(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	a, err := m.TryAcquire(ctx, "s", sem(2))
	if err != nil {
		t.Fatal(err)
	}
	short := sem(2)
	short.TTL = 200 * time.Millisecond
	if _, err := m.TryAcquire(ctx, "s", short); err != nil {
		t.Fatal(err)
	}
	if _, err := m.ReleaseKind(ctx, KindSemaphore, "s", a.Token); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the short permit expires
	keyLeft(t, rdb, "s")
}

func TestSharedHoldersExcludeExclusive(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	listen(t, m)
	ctx := context.Background()
	shared := Grant{TTL: 10 * time.Second, Mode: Shared}
	r1, err := m.TryAcquire(ctx, "rw", shared)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := m.TryAcquire(ctx, "rw", shared)
	if err != nil {
		t.Fatalf("second shared holder: %v", err)
	}
	var le *LockedError
	if _, err := m.TryAcquire(ctx, "rw", Grant{TTL: time.Second}); !errors.As(err, &le) || le.Mode != Shared || len(le.Holders) != 2 {
		t.Fatalf("exclusive beside shared holders: %v %+v", err, le)
	}
	// A waiting writer stops new shared grants.
	type res struct {
		l   Lease
		err error
	}
	writer := make(chan res, 1)
	go func() {
		l, _, err := m.AcquireWait(ctx, "rw", Grant{TTL: 10 * time.Second}, 10*time.Second)
		writer <- res{l, err}
	}()
	waitFor(t, func() bool { st, _, _ := m.InspectState(ctx, KindLock, "rw"); return len(st.Waiters) == 1 })
	if _, err := m.TryAcquire(ctx, "rw", shared); !errors.As(err, &le) || le.Queue != 1 {
		t.Fatalf("shared acquire behind a waiting writer: %v, want refused", err)
	}
	for _, l := range []Lease{r1, r2} {
		if err := m.ReleaseToken(ctx, "rw", l.Token); err != nil {
			t.Fatal(err)
		}
	}
	w := <-writer
	if w.err != nil {
		t.Fatal(w.err)
	}
	if w.l.Fence <= r2.Fence {
		t.Fatalf("writer's fence %d not above the readers' %d", w.l.Fence, r2.Fence)
	}
	if _, err := m.TryAcquire(ctx, "rw", shared); !errors.As(err, &le) || le.Mode != Exclusive {
		t.Fatalf("shared beside the writer: %v", err)
	}
	if err := m.ReleaseToken(ctx, "rw", w.l.Token); err != nil {
		t.Fatal(err)
	}
	keyLeft(t, rdb, "rw")
}

// waitFor polls cond for up to 5 s (test scaffolding only).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

// TestFairWaitersAcrossReplicasGoInArrivalOrder: waiters on two replicas
// join one after another; releases hand the lock on in that order, each
// in the releasing script.
func TestFairWaitersAcrossReplicasGoInArrivalOrder(t *testing.T) {
	t.Parallel()
	m, rdb, s := setup(t)
	other := replica(t, s)
	listen(t, m)
	listen(t, other)
	ctx := context.Background()
	first, err := m.TryAcquire(ctx, "fifo", Grant{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	order := make(chan int, n)
	tokens := make(chan Lease, n)
	var wg sync.WaitGroup
	for i := range n {
		r := []*Manager{m, other}[i%2]
		wg.Go(func() {
			l, _, err := r.AcquireWait(ctx, "fifo", Grant{TTL: 10 * time.Second, Fair: true, Owner: fmt.Sprint(i)}, 20*time.Second)
			if err != nil {
				t.Error(err)
				return
			}
			order <- i
			tokens <- l
		})
		// The next waiter starts once this one has its place.
		waitFor(t, func() bool { st, _, _ := m.InspectState(ctx, KindLock, "fifo"); return len(st.Waiters) == i+1 })
	}
	if err := m.ReleaseToken(ctx, "fifo", first.Token); err != nil {
		t.Fatal(err)
	}
	for want := range n {
		got := <-order
		if got != want {
			t.Fatalf("grant %d went to waiter %d", want, got)
		}
		l := <-tokens
		if err := other.ReleaseToken(ctx, "fifo", l.Token); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	keyLeft(t, rdb, "fifo")
}

// TestVanishedWaiterIsSkipped: a replica that stops renewing its waiter's
// place (it died) does not hold the queue up for the waiter's whole wait.
func TestVanishedWaiterIsSkipped(t *testing.T) {
	t.Parallel()
	m, _, s := setup(t)
	listen(t, m)
	ctx := context.Background()
	holder, err := m.TryAcquire(ctx, "gone", Grant{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A queue place nobody renews, as a dead replica leaves behind.
	dead := replica(t, s)
	tk, _ := newTicket()
	if _, err := dead.tryAcquire(ctx, "gone", Grant{TTL: 10 * time.Second, Fair: true}, modeWaiter+modeFair, tk); err == nil {
		t.Fatal("the dead waiter was granted a held lock")
	}
	got := make(chan error, 1)
	go func() {
		_, _, err := m.AcquireWait(ctx, "gone", Grant{TTL: 10 * time.Second, Fair: true}, 20*time.Second)
		got <- err
	}()
	waitFor(t, func() bool { st, _, _ := m.InspectState(ctx, KindLock, "gone"); return len(st.Waiters) == 2 })
	// Its place lapses within queueLiveness. (Were the lock released before
	// that, the dead waiter would be granted it, and its lease would run
	// out as that of a client that died holding it.)
	waitFor(t, func() bool { st, _, _ := m.InspectState(ctx, KindLock, "gone"); return len(st.Waiters) == 1 })
	if err := m.ReleaseToken(ctx, "gone", holder.Token); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the live waiter still waits after the release")
	}
}

func TestLockDelayAfterExpiryNotAfterRelease(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	g := Grant{TTL: 200 * time.Millisecond, LockDelay: 700 * time.Millisecond}
	l, err := m.TryAcquire(ctx, "d", g)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseToken(ctx, "d", l.Token); err != nil {
		t.Fatal(err)
	}
	l, err = m.TryAcquire(ctx, "d", g)
	if err != nil {
		t.Fatalf("after a release there is no delay: %v", err)
	}
	expiry := time.Now().Add(g.TTL)
	time.Sleep(300 * time.Millisecond)
	// Inspect sees the delay before any script has recorded it.
	if st, _, err := m.InspectState(ctx, KindLock, "d"); err != nil || st.DelayUntil.IsZero() {
		t.Fatalf("inspect right after the expiry: %+v %v", st, err)
	}
	var de *LockDelayError
	_, err = m.TryAcquire(ctx, "d", Grant{TTL: time.Second})
	if !errors.As(err, &de) {
		t.Fatalf("acquire after an expiry with a lock-delay: %v, want ErrLockDelay", err)
	}
	if de.Until.Before(expiry.Add(500 * time.Millisecond)) {
		t.Fatalf("delay ends at %v, want about %v", de.Until, expiry.Add(g.LockDelay))
	}
	st, held, err := m.InspectState(ctx, KindLock, "d")
	if err != nil || held || st.DelayUntil.IsZero() {
		t.Fatalf("inspect during the delay: %+v %v %v", st, held, err)
	}
	// A waiter gets it once the delay is over.
	l2, waited, err := m.AcquireWait(ctx, "d", Grant{TTL: time.Second}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// de.Until is Redis's delay end seen from here: the time left, as Redis
	// counted it in whole milliseconds, added on arrival, so up to a few
	// milliseconds late.
	if early := time.Until(de.Until); early > 10*time.Millisecond {
		t.Fatalf("granted %v before the delay's end", early)
	}
	if l2.Fence <= l.Fence {
		t.Fatalf("fence %d not above %d", l2.Fence, l.Fence)
	}
	_ = waited
	if err := m.ReleaseToken(ctx, "d", l2.Token); err != nil {
		t.Fatal(err)
	}
	keyLeft(t, rdb, "d")
}

func TestRicherGrantsRefuseBadRequests(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	for _, g := range []Grant{
		{TTL: time.Second, Kind: KindSemaphore},
		{TTL: time.Second, Kind: KindSemaphore, Limit: MaxLimit + 1},
		{TTL: time.Second, Kind: KindSemaphore, Limit: 2, Mode: Shared},
		{TTL: time.Second, Limit: 2},
		{TTL: time.Second, Mode: "read"},
		{TTL: time.Second, Kind: "mutex"},
		{TTL: time.Second, LockDelay: MaxLockDelay + time.Millisecond},
		{TTL: time.Second, LockDelay: -time.Second},
		{TTL: time.Second, LockDelay: 1500 * time.Microsecond},
	} {
		if _, err := m.TryAcquire(ctx, "bad", g); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: %v, want invalid argument", g, err)
		}
	}
	keyLeft(t, rdb, "bad")
}

func TestQuorumRefusesRicherGrants(t *testing.T) {
	t.Parallel()
	srvs := three(t)
	m := replica(t, srvs...)
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, g := range []Grant{sem(2), {TTL: time.Second, Mode: Shared}, {TTL: time.Second, Fair: true}, {TTL: time.Second, LockDelay: time.Second}} {
		if _, _, err := m.AcquireWait(context.Background(), "q", g, time.Second); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%+v in quorum mode: %v, want unsupported", g, err)
		}
	}
}

// TestQueuedWaiterLeaves: a fair waiter whose caller goes, or whose wait
// runs out, leaves the queue at once; the one whose wait ran out is told
// who holds the name and how long the queue is.
func TestQueuedWaiterLeaves(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	listen(t, m)
	ctx := context.Background()
	h, err := m.TryAcquire(ctx, "leave", Grant{TTL: 10 * time.Second, Owner: "holder"})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan error, 1)
	go func() {
		_, _, err := m.AcquireWait(cctx, "leave", Grant{TTL: time.Second, Fair: true}, 10*time.Second)
		gone <- err
	}()
	waitFor(t, func() bool { st, _, _ := m.InspectState(ctx, KindLock, "leave"); return len(st.Waiters) == 1 })
	_, _, err = m.AcquireWait(ctx, "leave", Grant{TTL: time.Second, Fair: true}, 300*time.Millisecond)
	var le *LockedError
	if !errors.As(err, &le) || le.Holder.Owner != "holder" || le.Queue != 1 {
		t.Fatalf("wait ran out in the queue: %v %+v, want locked by holder with the other waiter queued", err, le)
	}
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	st, _, err := m.InspectState(ctx, KindLock, "leave")
	if err != nil || len(st.Waiters) != 0 {
		t.Fatalf("queue after both left: %+v %v", st, err)
	}
	if err := m.ReleaseToken(ctx, "leave", h.Token); err != nil {
		t.Fatal(err)
	}
	keyLeft(t, rdb, "leave")
}

// TestSemaphoreWaitersWithoutFairness: waiters of a full semaphore are
// woken by releases (wake and retry) and each gets a permit.
func TestSemaphoreWaitersWithoutFairness(t *testing.T) {
	t.Parallel()
	m, rdb, s := setup(t)
	other := replica(t, s)
	listen(t, m)
	listen(t, other)
	ctx := context.Background()
	var held []Lease
	for range 2 {
		l, err := m.TryAcquire(ctx, "pool2", sem(2))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, l)
	}
	got := make(chan Lease, 4)
	for i := range 4 {
		r := []*Manager{m, other}[i%2]
		go func() {
			g := sem(2)
			l, _, err := r.AcquireWait(ctx, "pool2", g, 10*time.Second)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
	}
	waitFor(t, func() bool { return m.Waiting()+other.Waiting() == 4 })
	for _, l := range held {
		if _, err := other.ReleaseKind(ctx, KindSemaphore, "pool2", l.Token); err != nil {
			t.Fatal(err)
		}
	}
	for range 4 {
		select {
		case l := <-got:
			if _, err := m.ReleaseKind(ctx, KindSemaphore, "pool2", l.Token); err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a semaphore waiter was not woken by a release")
		}
	}
	keyLeft(t, rdb, "pool2")
}

// TestFairOnAFreeNameKeepsThePlainValue: a fair acquire of a free name
// needs no queue, so it keeps the small value of a plain lock; the record
// appears only when someone queues.
func TestFairOnAFreeNameKeepsThePlainValue(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	listen(t, m)
	ctx := context.Background()
	l, _, err := m.AcquireWait(ctx, "plainfair", Grant{TTL: 10 * time.Second, Fair: true}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v := rdb.Get(ctx, KeyPrefix+"plainfair").Val(); isRecord(v) {
		t.Fatalf("a fair grant of a free name is a record: %q", v)
	}
	go func() {
		_, _, _ = m.AcquireWait(ctx, "plainfair", Grant{TTL: time.Second, Fair: true}, 300*time.Millisecond)
	}()
	waitFor(t, func() bool { return isRecord(rdb.Get(ctx, KeyPrefix+"plainfair").Val()) })
	if err := m.ReleaseToken(ctx, "plainfair", l.Token); err != nil {
		t.Fatal(err)
	}
}

func isRecord(v string) bool { return strings.HasPrefix(v, "{") }

// A full semaphore's refusal names its highest fence's holder with that
// holder's own time left, and FirstEnd with the soonest one's: a permit
// that ends sooner than the newest must not lend it its TTL.
func TestSemaphoreRefusalNamesItsNewestHolderWhole(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	short := Grant{TTL: 2 * time.Second, Kind: KindSemaphore, Limit: 2, Owner: "short"}
	long := Grant{TTL: 20 * time.Second, Kind: KindSemaphore, Limit: 2, Owner: "long"}
	if _, err := m.TryAcquire(ctx, "pair", short); err != nil {
		t.Fatal(err)
	}
	newest, err := m.TryAcquire(ctx, "pair", long)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.TryAcquire(ctx, "pair", long)
	var le *LockedError
	if !errors.As(err, &le) {
		t.Fatalf("third permit: %v, want refused", err)
	}
	if le.Holder.Owner != "long" || le.Holder.Fence != newest.Fence || le.Holder.TTL <= 10*time.Second {
		t.Fatalf("holder %+v, want owner long, fence %d and most of 20s left", le.Holder, newest.Fence)
	}
	if first := le.FirstEnd(); first > 2*time.Second || first <= 0 {
		t.Fatalf("FirstEnd %v, want the short permit's time left (under 2s)", first)
	}
	if !strings.Contains(le.Error(), "the first ends in") {
		t.Fatalf("message %q", le.Error())
	}
}
