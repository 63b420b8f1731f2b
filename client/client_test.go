package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/client"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
)

func acquire(t *testing.T, c *client.Client, name string, opts client.AcquireOptions) *client.Lease {
	t.Helper()
	l, err := c.Acquire(context.Background(), name, opts)
	if err != nil {
		t.Fatalf("acquire %s: %v", name, err)
	}
	return l
}

func release(t *testing.T, l *client.Lease) {
	t.Helper()
	if err := l.Release(context.Background()); err != nil {
		t.Fatalf("release %s: %v", l.Name(), err)
	}
}

// waitDone returns how long after start the lease ended, failing the test
// when it has not within limit.
func waitDone(t *testing.T, l *client.Lease, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	select {
	case <-l.Done():
		return time.Since(start)
	case <-time.After(limit):
		t.Fatalf("lease %s still not done after %v", l.Name(), limit)
		return 0
	}
}

func TestAcquireReleaseRoundTrip(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()

	l := acquire(t, c, "round-trip", client.AcquireOptions{TTL: 10 * time.Second, Owner: "alice"})
	if l.Name() != "round-trip" || l.Owner() != "alice" || l.Fence() < 1 || len(l.Token()) < 22 || l.TTL() != 10*time.Second {
		t.Fatalf("lease: name %q owner %q fence %d token %q ttl %v", l.Name(), l.Owner(), l.Fence(), l.Token(), l.TTL())
	}
	info, err := c.Get(ctx, "round-trip")
	if err != nil {
		t.Fatal(err)
	}
	if !info.Held || info.Owner != "alice" || info.Fence != l.Fence() || info.TTL <= 0 || info.TTL > 10*time.Second {
		t.Fatalf("get: %+v", info)
	}
	if err := c.Check(ctx, "round-trip", l.Fence()); err != nil {
		t.Fatalf("check own fence: %v", err)
	}
	before := l.Until()
	time.Sleep(10 * time.Millisecond)
	if err := l.Extend(ctx); err != nil {
		t.Fatal(err)
	}
	if !l.Until().After(before) {
		t.Errorf("Until after Extend %v, want after %v", l.Until(), before)
	}
	release(t, l)
	if !errors.Is(l.Err(), client.ErrReleased) {
		t.Errorf("Err after Release: %v, want ErrReleased", l.Err())
	}
	select {
	case <-l.Context().Done():
	default:
		t.Error("Context not cancelled after Release")
	}
	if info, err := c.Get(ctx, "round-trip"); err != nil || info.Held {
		t.Errorf("get after release: %+v %v, want free", info, err)
	}
}

func TestListPagesAndAll(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()
	want := map[string]bool{}
	for _, n := range []string{"ls-a", "ls-b", "ls-c", "ls-d", "ls-e"} {
		l := acquire(t, c, n, client.AcquireOptions{Owner: "o-" + n})
		defer release(t, l)
		want[n] = true
	}
	acquire(t, c, "other", client.AcquireOptions{TTL: time.Second}) // left to expire

	seen := map[string]bool{}
	cursor, pages := "", 0
	for {
		p, err := c.List(ctx, "ls-", 2, cursor)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range p.Locks {
			if !e.Held || e.Owner != "o-"+e.Name || e.Fence < 1 {
				t.Errorf("entry %+v", e)
			}
			seen[e.Name] = true
		}
		if cursor = p.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != len(want) || pages < 2 {
		t.Errorf("List saw %v in %d pages, want %v over several pages", seen, pages, want)
	}
	all := map[string]bool{}
	for e, err := range c.All(ctx, "ls-") {
		if err != nil {
			t.Fatal(err)
		}
		all[e.Name] = true
	}
	if len(all) != len(want) {
		t.Errorf("All saw %v, want %v", all, want)
	}
}

func TestTypedErrors(t *testing.T) {
	s := startService(t, httpapi.Options{})
	c := newClient(t, s, client.Options{})
	ctx := context.Background()

	held := acquire(t, c, "typed", client.AcquireOptions{TTL: 20 * time.Second, Owner: "alice"})
	defer release(t, held)

	t.Run("locked names the holder", func(t *testing.T) {
		_, err := c.Acquire(ctx, "typed", client.AcquireOptions{Owner: "bob"})
		var locked *client.LockedError
		if !errors.Is(err, client.ErrLocked) || !errors.As(err, &locked) {
			t.Fatalf("got %v, want a *LockedError", err)
		}
		if locked.Owner != "alice" || locked.Fence != held.Fence() || locked.TTL <= 0 || locked.TTL > 20*time.Second || locked.RetryAfter < time.Second {
			t.Errorf("holder %+v", locked)
		}
		var api *client.APIError
		if !errors.As(err, &api) || api.Status != http.StatusConflict || api.Code != "locked" {
			t.Errorf("APIError %+v", api)
		}
	})
	t.Run("not holder", func(t *testing.T) {
		err := c.Release(ctx, "typed", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		if !errors.Is(err, client.ErrNotHolder) || errors.Is(err, client.ErrLocked) {
			t.Errorf("got %v, want ErrNotHolder only", err)
		}
	})
	t.Run("invalid argument", func(t *testing.T) {
		_, err := c.Acquire(ctx, "-bad name", client.AcquireOptions{})
		if !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("bad name: %v, want ErrInvalidArgument", err)
		}
		// The name reaches lockd as written, escaped once: its refusal
		// names the character the caller typed.
		for name, char := range map[string]string{"a b": "' '", "a/b": "'/'", "a%b": "'%'", "a%20b": "'%'", "a?b": "'?'", "a#b": "'#'"} {
			_, err := c.Acquire(ctx, name, client.AcquireOptions{})
			if !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), "contains "+char) {
				t.Errorf("name %q: %v, want ErrInvalidArgument naming %s", name, err, char)
			}
		}
		_, err = c.Acquire(ctx, "fine", client.AcquireOptions{TTL: time.Millisecond})
		if !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("ttl 1ms: %v, want ErrInvalidArgument", err)
		}
	})
	t.Run("stale fence", func(t *testing.T) {
		old := acquire(t, c, "fenced", client.AcquireOptions{})
		release(t, old)
		cur := acquire(t, c, "fenced", client.AcquireOptions{})
		defer release(t, cur)
		err := c.Check(ctx, "fenced", old.Fence())
		var stale *client.StaleFenceError
		if !errors.Is(err, client.ErrStaleFence) || !errors.As(err, &stale) || stale.Current != cur.Fence() {
			t.Errorf("got %v (%+v), want stale with current %d", err, stale, cur.Fence())
		}
	})
	t.Run("unavailable", func(t *testing.T) {
		dead, err := client.New("http://127.0.0.1:1", client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = dead.Get(ctx, "x")
		if !errors.Is(err, client.ErrUnavailable) {
			t.Errorf("got %v, want ErrUnavailable", err)
		}
	})
	t.Run("own cancellation is not unavailable", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := c.Acquire(cctx, "typed", client.AcquireOptions{Wait: 10 * time.Second})
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrUnavailable) {
			t.Errorf("got %v, want the context's deadline", err)
		}
	})
	t.Run("bad URL", func(t *testing.T) {
		for _, u := range []string{"localhost:8081", "ftp://x", "http://"} {
			if _, err := client.New(u, client.Options{}); err == nil {
				t.Errorf("New(%q) accepted", u)
			}
		}
	})
}

func TestUnauthenticated(t *testing.T) {
	const token = "0123456789abcdef"
	s := startService(t, httpapi.Options{APITokens: []string{token}})
	ctx := context.Background()

	for _, tok := range []string{"", "wrong-token-wrong-token"} {
		_, err := newClient(t, s, client.Options{Token: tok}).Acquire(ctx, "auth", client.AcquireOptions{})
		var api *client.APIError
		if !errors.Is(err, client.ErrUnauthenticated) || !errors.As(err, &api) || api.Status != http.StatusUnauthorized {
			t.Errorf("token %q: got %v, want ErrUnauthenticated", tok, err)
		}
	}
	l := acquire(t, newClient(t, s, client.Options{Token: token}), "auth", client.AcquireOptions{})
	release(t, l)
}

// delayed holds every answer back before the client sees it, as a slow
// network would.
type delayed struct {
	rt    http.RoundTripper
	delay time.Duration
}

func (d delayed) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.rt.RoundTrip(r)
	time.Sleep(d.delay)
	return resp, err
}

func TestValidityCountedFromSend(t *testing.T) {
	s := startService(t, httpapi.Options{})
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	const delay, ttl = 400 * time.Millisecond, 2 * time.Second
	slow := newClient(t, s, client.Options{HTTPClient: &http.Client{Transport: delayed{tr, delay}}})
	fast := newClient(t, s, client.Options{})

	t.Run("acquire", func(t *testing.T) {
		sent := time.Now()
		l, err := slow.Acquire(context.Background(), "validity", client.AcquireOptions{TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		defer release(t, l)
		if got, limit := l.Until(), sent.Add(ttl); got.After(limit) {
			t.Errorf("Until %v after send+ttl %v", got, limit)
		}
		// Counting from the answer's arrival would leave the whole TTL.
		if left := time.Until(l.Until()); left > ttl-delay {
			t.Errorf("%v left after a %v trip back, want at most %v", left, delay, ttl-delay)
		}
		sent = time.Now()
		if err := l.Extend(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got, limit := l.Until(), sent.Add(ttl); got.After(limit) {
			t.Errorf("after Extend: Until %v after send+ttl %v", got, limit)
		}
	})
	t.Run("after a wait", func(t *testing.T) {
		holder := acquire(t, fast, "waited", client.AcquireOptions{TTL: 300 * time.Millisecond})
		_ = holder // left to expire, so the waiter waits about 300ms
		sent := time.Now()
		l, err := slow.Acquire(context.Background(), "waited", client.AcquireOptions{TTL: ttl, Wait: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer release(t, l)
		waited := time.Since(sent) - delay
		if got, limit := l.Until(), sent.Add(waited+ttl); got.After(limit) {
			t.Errorf("Until %v after send+waited+ttl %v", got, limit)
		}
		if left := time.Until(l.Until()); left > ttl-delay || left < ttl/2 {
			t.Errorf("%v left, want between %v and %v", left, ttl/2, ttl-delay)
		}
	})
}

// TestBehindAPathPrefix: lockd served under a path (a reverse proxy's
// /lockd/) is reached through a base URL that names it; names are escaped
// once below it.
func TestBehindAPathPrefix(t *testing.T) {
	s := startService(t, httpapi.Options{})
	hs := httptest.NewServer(http.StripPrefix("/lockd", s.handler))
	t.Cleanup(hs.Close)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := client.New(hs.URL+"/lockd/", client.Options{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l := acquire(t, c, "behind:proxy", client.AcquireOptions{})
	if info, err := c.Get(ctx, "behind:proxy"); err != nil || !info.Held || info.Fence != l.Fence() {
		t.Errorf("get: %+v, %v", info, err)
	}
	release(t, l)
	if _, err := c.Acquire(ctx, "a b", client.AcquireOptions{}); !errors.Is(err, client.ErrInvalidArgument) || !strings.Contains(err.Error(), "contains ' '") {
		t.Errorf("name \"a b\": %v, want ErrInvalidArgument naming ' '", err)
	}
}
