package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

func semaphore(t *testing.T, c *client.Client, name string, limit int, opts client.AcquireOptions) *client.Lease {
	t.Helper()
	l, err := c.AcquireSemaphore(context.Background(), name, limit, opts)
	if err != nil {
		t.Fatalf("acquire semaphore %s: %v", name, err)
	}
	return l
}

// waitQueue returns once get says n wait in name's queue.
func waitQueue(t *testing.T, get func(context.Context, string) (client.LockInfo, error), name string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		info, err := get(context.Background(), name)
		if err == nil && info.Queue == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue of %s: %+v %v, want %d waiting", name, info, err, n)
		}
	}
}

func owners(hs []client.Holder) []string {
	var o []string
	for _, h := range hs {
		o = append(o, h.Owner)
	}
	return o
}

func TestSemaphoreRoundTrip(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()

	a := semaphore(t, c, "pool", 2, client.AcquireOptions{TTL: 10 * time.Second, Owner: "a"})
	b := semaphore(t, c, "pool", 2, client.AcquireOptions{TTL: 10 * time.Second, Owner: "b"})
	if a.Kind() != client.KindSemaphore || a.Limit() != 2 || a.Mode() != "" || a.Owner() != "a" || a.TTL() != 10*time.Second {
		t.Errorf("permit a: kind %q limit %d mode %q owner %q ttl %v", a.Kind(), a.Limit(), a.Mode(), a.Owner(), a.TTL())
	}
	if a.Token() == b.Token() || b.Fence() <= a.Fence() {
		t.Errorf("permits share a token, or fences %d then %d do not rise", a.Fence(), b.Fence())
	}

	t.Run("full", func(t *testing.T) {
		_, err := c.AcquireSemaphore(ctx, "pool", 2, client.AcquireOptions{Owner: "c"})
		var locked *client.LockedError
		if !errors.Is(err, client.ErrLocked) || !errors.As(err, &locked) {
			t.Fatalf("got %v, want a *LockedError", err)
		}
		if locked.Limit != 2 || locked.Mode != "" || len(locked.Holders) != 2 || locked.Owner != "b" || locked.Fence != b.Fence() ||
			locked.TTL <= 0 || locked.RetryAfter < time.Second {
			t.Errorf("refusal %+v", locked)
		}
		if got := owners(locked.Holders); fmt.Sprint(got) != "[a b]" {
			t.Errorf("holders %v, want [a b] by fence", got)
		}
	})
	t.Run("get", func(t *testing.T) {
		info, err := c.GetSemaphore(ctx, "pool")
		if err != nil {
			t.Fatal(err)
		}
		if !info.Held || info.Kind != client.KindSemaphore || info.Limit != 2 || len(info.Holders) != 2 ||
			info.Owner != "b" || info.Fence != b.Fence() || info.TTL <= 0 || info.TTL > 10*time.Second || info.Queue != 0 || !info.DelayUntil.IsZero() {
			t.Errorf("semaphore %+v", info)
		}
		for _, h := range info.Holders {
			if h.Fence < 1 || h.TTL <= 0 || h.Mode != "" {
				t.Errorf("holder %+v", h)
			}
		}
	})
	t.Run("extend and check", func(t *testing.T) {
		before := a.Until()
		time.Sleep(10 * time.Millisecond)
		if err := a.Extend(ctx); err != nil {
			t.Fatal(err)
		}
		if !a.Until().After(before) {
			t.Errorf("Until after Extend %v, want after %v", a.Until(), before)
		}
		if err := a.Check(ctx); err != nil {
			t.Errorf("lease check: %v", err)
		}
		if err := c.CheckSemaphore(ctx, "pool", b.Fence()); err != nil {
			t.Errorf("check b's fence: %v", err)
		}
		l, err := c.ExtendSemaphore(ctx, "pool", b.Token(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if l.Kind() != client.KindSemaphore || l.Fence() != b.Fence() {
			t.Errorf("extended by token: kind %q fence %d", l.Kind(), l.Fence())
		}
	})

	release(t, a)
	third := semaphore(t, c, "pool", 2, client.AcquireOptions{Owner: "c"})
	if err := c.ReleaseSemaphore(ctx, "pool", third.Token()); err != nil {
		t.Fatal(err)
	}
	if err := c.ReleaseSemaphore(ctx, "pool", third.Token()); !errors.Is(err, client.ErrNotHolder) {
		t.Errorf("second release: %v, want ErrNotHolder", err)
	}
	if err := third.Release(ctx); !errors.Is(err, client.ErrNotHolder) || !errors.Is(third.Err(), client.ErrLost) {
		t.Errorf("lease release after its token's: %v (Err %v), want ErrNotHolder and lost", err, third.Err())
	}
	if err := c.CheckSemaphore(ctx, "pool", a.Fence()); !errors.Is(err, client.ErrStaleFence) {
		t.Errorf("check of a released permit: %v, want ErrStaleFence", err)
	}
	release(t, b)
	if info, err := c.GetSemaphore(ctx, "pool"); err != nil || info.Held || len(info.Holders) != 0 {
		t.Errorf("after the last release: %+v %v, want free", info, err)
	}
}

func TestSemaphoreWaitsForAPermit(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	semaphore(t, c, "one-slot", 1, client.AcquireOptions{TTL: 300 * time.Millisecond}) // left to expire
	start := time.Now()
	l := semaphore(t, c, "one-slot", 1, client.AcquireOptions{Wait: 5 * time.Second})
	defer release(t, l)
	if took := time.Since(start); took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("waited %v for a permit that expires in 300ms", took)
	}
}

func TestKindAndLimitMismatch(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()
	sem := semaphore(t, c, "sem", 2, client.AcquireOptions{})
	defer release(t, sem)
	lk := acquire(t, c, "lk", client.AcquireOptions{})
	defer release(t, lk)

	kindIs := func(t *testing.T, err error, want client.Kind) {
		t.Helper()
		var km *client.KindMismatchError
		if !errors.Is(err, client.ErrKindMismatch) || !errors.As(err, &km) || km.Kind != want {
			t.Errorf("got %v, want a *KindMismatchError saying %s", err, want)
			return
		}
		if km.API.Status != http.StatusConflict || km.API.Code != "kind_mismatch" || errors.Is(err, client.ErrLocked) {
			t.Errorf("APIError %+v", km.API)
		}
	}
	t.Run("lock asked of a semaphore", func(t *testing.T) {
		_, err := c.Acquire(ctx, "sem", client.AcquireOptions{})
		kindIs(t, err, client.KindSemaphore)
		_, err = c.Get(ctx, "sem")
		kindIs(t, err, client.KindSemaphore)
		kindIs(t, c.Release(ctx, "sem", sem.Token()), client.KindSemaphore)
		kindIs(t, c.Check(ctx, "sem", sem.Fence()), client.KindSemaphore)
		_, err = c.Extend(ctx, "sem", sem.Token(), 0)
		kindIs(t, err, client.KindSemaphore)
	})
	t.Run("semaphore asked of a lock", func(t *testing.T) {
		_, err := c.AcquireSemaphore(ctx, "lk", 2, client.AcquireOptions{})
		kindIs(t, err, client.KindLock)
		_, err = c.GetSemaphore(ctx, "lk")
		kindIs(t, err, client.KindLock)
		kindIs(t, c.ReleaseSemaphore(ctx, "lk", lk.Token()), client.KindLock)
		kindIs(t, c.CheckSemaphore(ctx, "lk", lk.Fence()), client.KindLock)
	})
	t.Run("limit", func(t *testing.T) {
		_, err := c.AcquireSemaphore(ctx, "sem", 3, client.AcquireOptions{})
		var lm *client.LimitMismatchError
		if !errors.Is(err, client.ErrLimitMismatch) || !errors.As(err, &lm) || lm.Limit != 2 || lm.API.Status != http.StatusConflict {
			t.Errorf("got %v (%+v), want a *LimitMismatchError with limit 2", err, lm)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		for _, tc := range []struct {
			what string
			err  error
		}{
			{"limit 0", func() error { _, err := c.AcquireSemaphore(ctx, "v", 0, client.AcquireOptions{}); return err }()},
			{"limit 1001", func() error { _, err := c.AcquireSemaphore(ctx, "v", 1001, client.AcquireOptions{}); return err }()},
			{"mode on a semaphore", func() error {
				_, err := c.AcquireSemaphore(ctx, "v", 2, client.AcquireOptions{Mode: client.Shared})
				return err
			}()},
			{"unknown mode", func() error { _, err := c.Acquire(ctx, "v", client.AcquireOptions{Mode: "sideways"}); return err }()},
			{"lock-delay over a minute", func() error {
				_, err := c.Acquire(ctx, "v", client.AcquireOptions{LockDelay: 61 * time.Second})
				return err
			}()},
		} {
			if !errors.Is(tc.err, client.ErrInvalidArgument) {
				t.Errorf("%s: %v, want ErrInvalidArgument", tc.what, tc.err)
			}
		}
	})
}

func TestSharedLock(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()

	r1 := acquire(t, c, "doc", client.AcquireOptions{Mode: client.Shared, Owner: "reader-1"})
	r2 := acquire(t, c, "doc", client.AcquireOptions{Mode: client.Shared, Owner: "reader-2"})
	if r1.Kind() != client.KindLock || r1.Mode() != client.Shared || r1.Limit() != 0 {
		t.Errorf("shared lease: kind %q mode %q limit %d", r1.Kind(), r1.Mode(), r1.Limit())
	}
	info, err := c.Get(ctx, "doc")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.Kind != client.KindLock || info.Mode != client.Shared || len(info.Holders) != 2 || info.Fence != r2.Fence() || info.Owner != "reader-2" {
		t.Errorf("get %+v", info)
	}
	for _, h := range info.Holders {
		if h.Mode != client.Shared {
			t.Errorf("holder %+v, want shared", h)
		}
	}

	_, err = c.Acquire(ctx, "doc", client.AcquireOptions{Owner: "writer"})
	var locked *client.LockedError
	if !errors.As(err, &locked) || locked.Mode != client.Shared || len(locked.Holders) != 2 || locked.Limit != 0 {
		t.Fatalf("exclusive over readers: %v (%+v), want locked by two shared holders", err, locked)
	}

	// A waiting writer stops new readers, so it is not starved.
	type result struct {
		l   *client.Lease
		err error
	}
	wrote := make(chan result, 1)
	go func() {
		l, err := c.Acquire(ctx, "doc", client.AcquireOptions{Owner: "writer", Wait: 10 * time.Second})
		wrote <- result{l, err}
	}()
	waitQueue(t, c.Get, "doc", 1)
	_, err = c.Acquire(ctx, "doc", client.AcquireOptions{Mode: client.Shared, Owner: "reader-3"})
	if !errors.As(err, &locked) || locked.Queue != 1 {
		t.Errorf("reader behind a waiting writer: %v (%+v), want locked with one queued", err, locked)
	}
	release(t, r1)
	release(t, r2)
	w := <-wrote
	if w.err != nil {
		t.Fatalf("writer: %v", w.err)
	}
	if w.l.Mode() != client.Exclusive || w.l.Fence() <= r2.Fence() {
		t.Errorf("writer's lease: mode %q fence %d", w.l.Mode(), w.l.Fence())
	}
	_, err = c.Acquire(ctx, "doc", client.AcquireOptions{Mode: client.Shared})
	if !errors.As(err, &locked) || locked.Mode != client.Exclusive || locked.Owner != "writer" || len(locked.Holders) != 1 {
		t.Errorf("shared under a writer: %v (%+v), want locked by the writer", err, locked)
	}
	release(t, w.l)
}

func TestFairWaitersInArrivalOrder(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()
	holder := acquire(t, c, "fifo", client.AcquireOptions{TTL: 10 * time.Second, Owner: "holder"})

	whos := []string{"first", "second", "third"}
	order := make(chan string, len(whos))
	errs := make(chan error, len(whos))
	for i, who := range whos {
		go func() {
			l, err := c.Acquire(ctx, "fifo", client.AcquireOptions{Fair: true, Wait: 10 * time.Second, Owner: who})
			if err != nil {
				errs <- fmt.Errorf("%s: %w", who, err)
				return
			}
			order <- who // before the release: the next grant follows it
			errs <- l.Release(ctx)
		}()
		waitQueue(t, c.Get, "fifo", i+1)
	}
	// Nobody jumps a queue: an acquire that does not wait fails at once.
	_, err := c.Acquire(ctx, "fifo", client.AcquireOptions{Owner: "jumper"})
	var locked *client.LockedError
	if !errors.As(err, &locked) || locked.Queue != len(whos) || locked.Owner != "holder" {
		t.Errorf("jumper: %v (%+v), want locked with %d queued", err, locked, len(whos))
	}
	info, err := c.Get(ctx, "fifo")
	if want := []client.Waiter{{"first", client.Exclusive}, {"second", client.Exclusive}, {"third", client.Exclusive}}; err != nil ||
		fmt.Sprint(info.Waiters) != fmt.Sprint(want) {
		t.Errorf("Get: waiters %+v (%v), want %+v", info.Waiters, err, want)
	}
	release(t, holder)
	for range whos {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(order)
	var got []string
	for who := range order {
		got = append(got, who)
	}
	if fmt.Sprint(got) != fmt.Sprint(whos) {
		t.Errorf("granted in the order %v, want %v", got, whos)
	}
}

func TestLockDelay(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()
	const delay = 1500 * time.Millisecond

	t.Run("after expiry", func(t *testing.T) {
		l := acquire(t, c, "delayed", client.AcquireOptions{TTL: 300 * time.Millisecond, LockDelay: delay, Owner: "died"})
		<-l.Done() // left to expire, as a crashed holder's would
		// The client gives the lease up a moment before Redis does.
		var err error
		for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			_, err = c.Acquire(ctx, "delayed", client.AcquireOptions{Owner: "next"})
			if !errors.Is(err, client.ErrLocked) || time.Now().After(deadline) {
				break
			}
		}
		var de *client.LockDelayError
		if !errors.Is(err, client.ErrLockDelay) || !errors.As(err, &de) || errors.Is(err, client.ErrLocked) {
			t.Fatalf("got %v, want a *LockDelayError", err)
		}
		if left := time.Until(de.Until); left <= 0 || left > delay+100*time.Millisecond {
			t.Errorf("delay ends in %v, want within %v", left, delay)
		}
		if de.RetryAfter < time.Second || de.RetryAfter > 2*time.Second || de.API.Status != http.StatusConflict {
			t.Errorf("refusal %+v", de)
		}
		info, err := c.Get(ctx, "delayed")
		if err != nil {
			t.Fatal(err)
		}
		if info.Held || len(info.Holders) != 0 || info.DelayUntil.Sub(de.Until).Abs() > 10*time.Millisecond {
			t.Errorf("get %+v, want free but delayed until %v", info, de.Until)
		}

		start := time.Now()
		next := acquire(t, c, "delayed", client.AcquireOptions{Owner: "next", Wait: 5 * time.Second})
		if took, want := time.Since(start), de.Until.Sub(start); took < want-50*time.Millisecond {
			t.Errorf("granted %v into a wait for a delay %v away", took, want)
		}
		release(t, next)
	})
	t.Run("not after release", func(t *testing.T) {
		l := acquire(t, c, "released", client.AcquireOptions{TTL: 10 * time.Second, LockDelay: delay})
		release(t, l)
		l = acquire(t, c, "released", client.AcquireOptions{})
		release(t, l)
	})
}

func TestKeepAliveEveryKind(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()
	// Not less: a loaded machine can stall a process for a few hundred
	// milliseconds, and a renewal must still come in time.
	const ttl = 600 * time.Millisecond

	for _, tc := range []struct {
		name    string
		acquire func(name string) (*client.Lease, error)
		get     func(context.Context, string) (client.LockInfo, error)
	}{
		{"exclusive", func(n string) (*client.Lease, error) { return c.Acquire(ctx, n, client.AcquireOptions{TTL: ttl}) }, c.Get},
		{"shared", func(n string) (*client.Lease, error) {
			return c.Acquire(ctx, n, client.AcquireOptions{TTL: ttl, Mode: client.Shared})
		}, c.Get},
		{"fair with a lock-delay", func(n string) (*client.Lease, error) {
			return c.Acquire(ctx, n, client.AcquireOptions{TTL: ttl, Fair: true, LockDelay: time.Second})
		}, c.Get},
		{"semaphore", func(n string) (*client.Lease, error) {
			return c.AcquireSemaphore(ctx, n, 3, client.AcquireOptions{TTL: ttl})
		}, c.GetSemaphore},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			name := "kept-" + tc.name[:4]
			held := func(l *client.Lease) bool {
				t.Helper()
				info, err := tc.get(ctx, name)
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range info.Holders {
					if h.Fence == l.Fence() {
						return true
					}
				}
				return false
			}

			// Renewed past many TTLs, then released.
			l, err := tc.acquire(name)
			if err != nil {
				t.Fatal(err)
			}
			kctx, cancel := context.WithCancel(ctx)
			defer cancel()
			l.KeepAlive(kctx, client.KeepAliveOptions{})
			select {
			case <-l.Done():
				t.Fatalf("lease ended while renewed: %v", l.Err())
			case <-time.After(4 * ttl):
			}
			if !held(l) {
				t.Fatal("not a holder after four TTLs of renewals")
			}
			if err := l.Check(ctx); err != nil {
				t.Errorf("check: %v", err)
			}
			release(t, l)
			if held(l) {
				t.Error("still a holder after release")
			}

			// Lost when its key goes, within a renewal.
			l, err = tc.acquire(name)
			if err != nil {
				t.Fatal(err)
			}
			l.KeepAlive(kctx, client.KeepAliveOptions{})
			time.Sleep(ttl / 2)
			deleted := time.Now()
			if err := s.rdb.Del(ctx, "lock:"+name).Err(); err != nil {
				t.Fatal(err)
			}
			if took := waitDone(t, l, deleted, 2*ttl); took > ttl/3+300*time.Millisecond {
				t.Errorf("loss noticed after %v", took)
			}
			if err := l.Err(); !errors.Is(err, client.ErrLost) || !errors.Is(err, client.ErrNotHolder) {
				t.Errorf("Err %v, want ErrLost wrapping ErrNotHolder", err)
			}
		})
	}
}

func TestListShowsEveryKind(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()
	for _, l := range []*client.Lease{
		semaphore(t, c, "kinds-sem", 3, client.AcquireOptions{Owner: "s1"}),
		semaphore(t, c, "kinds-sem", 3, client.AcquireOptions{Owner: "s2"}),
		acquire(t, c, "kinds-shared", client.AcquireOptions{Mode: client.Shared, Owner: "r1"}),
		acquire(t, c, "kinds-shared", client.AcquireOptions{Mode: client.Shared, Owner: "r2"}),
		acquire(t, c, "kinds-x", client.AcquireOptions{Owner: "x"}),
	} {
		defer release(t, l)
	}
	got := map[string]client.LockInfo{}
	for e, err := range c.All(ctx, "kinds-") {
		if err != nil {
			t.Fatal(err)
		}
		got[e.Name] = e
	}
	for name, want := range map[string]struct {
		kind    client.Kind
		mode    client.Mode
		limit   int
		holders string
		owner   string
	}{
		"kinds-sem":    {client.KindSemaphore, "", 3, "[s1 s2]", "s2"},
		"kinds-shared": {client.KindLock, client.Shared, 0, "[r1 r2]", "r2"},
		"kinds-x":      {client.KindLock, client.Exclusive, 0, "[x]", "x"},
	} {
		e := got[name]
		if !e.Held || e.Kind != want.kind || e.Mode != want.mode || e.Limit != want.limit || fmt.Sprint(owners(e.Holders)) != want.holders || e.Owner != want.owner {
			t.Errorf("%s: %+v, want %+v", name, e, want)
		}
	}
}

func TestUnsupportedInQuorumMode(t *testing.T) {
	var addrs []string
	for range 3 {
		addrs = append(addrs, redistest.Start(t, redistest.Options{}).Addr)
	}
	s, err := startLockdOn(addrs, httpapi.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	c := newClient(t, s, client.Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		what string
		err  error
	}{
		{"semaphore", func() error { _, err := c.AcquireSemaphore(ctx, "q", 2, client.AcquireOptions{}); return err }()},
		{"shared", func() error { _, err := c.Acquire(ctx, "q", client.AcquireOptions{Mode: client.Shared}); return err }()},
		{"fair", func() error {
			_, err := c.Acquire(ctx, "q", client.AcquireOptions{Fair: true, Wait: time.Second})
			return err
		}()},
		{"lock-delay", func() error { _, err := c.Acquire(ctx, "q", client.AcquireOptions{LockDelay: time.Second}); return err }()},
	} {
		var api *client.APIError
		if !errors.Is(tc.err, client.ErrUnsupported) || !errors.As(tc.err, &api) || api.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want ErrUnsupported (400)", tc.what, tc.err)
		}
	}
	// A plain exclusive lock still works, once the new nodes vote (they
	// have to be up a moment first).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		l, err := c.Acquire(ctx, "q", client.AcquireOptions{})
		if err == nil {
			release(t, l)
			return
		}
		if !errors.Is(err, client.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("plain lock in quorum mode: %v", err)
		}
	}
}

// TestErrorBodies decodes each new refusal from the documented body alone,
// as a program in another language would see it.
func TestErrorBodies(t *testing.T) {
	for _, tc := range []struct {
		name, body, retryAfter string
		status                 int
		check                  func(t *testing.T, err error)
	}{
		{"semaphore locked", `{"error":{"code":"locked","message":"m"},"holder":{"owner":"b","fence":9,"ttl_ms":1500},` +
			`"holders":[{"owner":"a","fence":8,"ttl_ms":900},{"owner":"b","fence":9,"ttl_ms":1500}],"limit":2,"queue":3}`, "1", 409,
			func(t *testing.T, err error) {
				var e *client.LockedError
				if !errors.As(err, &e) || e.Owner != "b" || e.Fence != 9 || e.TTL != 1500*time.Millisecond || e.Limit != 2 || e.Queue != 3 ||
					len(e.Holders) != 2 || e.Holders[0] != (client.Holder{Owner: "a", Fence: 8, TTL: 900 * time.Millisecond}) || e.RetryAfter != time.Second {
					t.Errorf("%v: %+v", err, e)
				}
			}},
		{"shared locked without holder", `{"error":{"code":"locked","message":"m"},"holders":[{"owner":"r","fence":4,"ttl_ms":10,"mode":"shared"}],"mode":"shared"}`, "", 409,
			func(t *testing.T, err error) {
				var e *client.LockedError
				if !errors.As(err, &e) || e.Owner != "r" || e.Fence != 4 || e.Mode != client.Shared || e.Holders[0].Mode != client.Shared {
					t.Errorf("%v: %+v", err, e)
				}
			}},
		{"plain locked", `{"error":{"code":"locked","message":"m"},"holder":{"owner":"o","fence":2,"ttl_ms":10}}`, "", 409,
			func(t *testing.T, err error) {
				var e *client.LockedError
				if !errors.As(err, &e) || len(e.Holders) != 1 || e.Holders[0].Owner != "o" {
					t.Errorf("%v: %+v", err, e)
				}
			}},
		{"kind", `{"error":{"code":"kind_mismatch","message":"m"},"kind":"semaphore"}`, "", 409,
			func(t *testing.T, err error) {
				var e *client.KindMismatchError
				if !errors.As(err, &e) || e.Kind != client.KindSemaphore || !errors.Is(err, client.ErrKindMismatch) {
					t.Errorf("%v: %+v", err, e)
				}
			}},
		{"limit", `{"error":{"code":"limit_mismatch","message":"m"},"limit":5}`, "", 409,
			func(t *testing.T, err error) {
				var e *client.LimitMismatchError
				if !errors.As(err, &e) || e.Limit != 5 || !errors.Is(err, client.ErrLimitMismatch) {
					t.Errorf("%v: %+v", err, e)
				}
			}},
		{"delay", `{"error":{"code":"lock_delay","message":"m"},"delay_until":"2031-02-03T04:05:06.789Z"}`, "3", 409,
			func(t *testing.T, err error) {
				var e *client.LockDelayError
				want := time.Date(2031, 2, 3, 4, 5, 6, 789e6, time.UTC)
				if !errors.As(err, &e) || !e.Until.Equal(want) || e.RetryAfter != 3*time.Second || !errors.Is(err, client.ErrLockDelay) {
					t.Errorf("%v: %+v", err, e)
				}
			}},
		{"delay without its field", `{"error":{"code":"lock_delay","message":"m"}}`, "", 409,
			func(t *testing.T, err error) {
				var e *client.LockDelayError
				if errors.As(err, &e) || !errors.Is(err, client.ErrLockDelay) {
					t.Errorf("%v: want a plain *APIError matching ErrLockDelay", err)
				}
			}},
		{"unsupported", `{"error":{"code":"unsupported","message":"m"}}`, "", 400,
			func(t *testing.T, err error) {
				if !errors.Is(err, client.ErrUnsupported) || errors.Is(err, client.ErrInvalidArgument) {
					t.Errorf("%v: want ErrUnsupported only", err)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, &service{URL: answering(t, tc.status, tc.body, tc.retryAfter)}, client.Options{})
			_, err := c.Acquire(context.Background(), "x", client.AcquireOptions{})
			tc.check(t, err)
		})
	}
}

// answering serves body with status to every request.
func answering(t *testing.T, status int, body, retryAfter string) string {
	t.Helper()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(hs.Close)
	return hs.URL
}

func ExampleClient_AcquireSemaphore() {
	c, stop := exampleClient()
	defer stop()
	ctx := context.Background()

	// At most two builds at once, each with a permit of its own.
	var permits []*client.Lease
	for _, who := range []string{"build-1", "build-2"} {
		p, err := c.AcquireSemaphore(ctx, "builders", 2, client.AcquireOptions{TTL: 30 * time.Second, Owner: who})
		if err != nil {
			panic(err)
		}
		permits = append(permits, p)
	}
	_, err := c.AcquireSemaphore(ctx, "builders", 2, client.AcquireOptions{Owner: "build-3"})
	var locked *client.LockedError
	if errors.As(err, &locked) {
		fmt.Println("build-3:", len(locked.Holders), "of", locked.Limit, "permits held")
	}
	// Asking with another limit than the holders' is refused.
	_, err = c.AcquireSemaphore(ctx, "builders", 3, client.AcquireOptions{})
	var lm *client.LimitMismatchError
	if errors.As(err, &lm) {
		fmt.Println("limit in use:", lm.Limit)
	}
	for _, p := range permits {
		if err := p.Release(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	info, err := c.GetSemaphore(ctx, "builders")
	if err != nil {
		panic(err)
	}
	fmt.Println("held after release:", info.Held)
	// Output:
	// build-3: 2 of 2 permits held
	// limit in use: 2
	// held after release: false
}
