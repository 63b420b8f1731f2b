package lock

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup starts a Redis for t and returns a prepared Manager and a separate
// client for looking behind the Manager's back.
func setup(t *testing.T) (*Manager, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	m := replica(t, srv)
	if err := m.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m, srv.Client(t, 0), srv
}

// replica returns a second Manager over srv, with its own connections, as
// another lockd process would have.
func replica(t *testing.T, srvs ...*redistest.Server) *Manager {
	t.Helper()
	var nodes []*redis.Options
	for _, s := range srvs {
		nodes = append(nodes, nodeOptions(s.Addr, "pw"))
	}
	m := New(Config{Nodes: nodes})
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func nodeOptions(addr, password string) *redis.Options {
	return &redis.Options{Addr: addr, Password: password, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second}
}

func TestRedsyncScriptsAreTheOnesItSends(t *testing.T) {
	t.Parallel()
	want := map[string]bool{
		"e950836ed1e694540c503ef9972b8de518044d3b": true, // compare-and-delete (release)
		"d75bb8b5bd13532ddedd17762e772346e39b321e": true, // compare-and-pexpire (extend)
	}
	scripts := redsyncScripts()
	if len(scripts) != len(want) {
		t.Fatalf("got %d scripts, want %d", len(scripts), len(want))
	}
	for _, s := range scripts {
		sum := sha1.Sum([]byte(s.Src))
		if got := hex.EncodeToString(sum[:]); got != s.Hash || !want[got] {
			t.Errorf("script hash %s (declared %s) is not one of %v", got, s.Hash, want)
		}
	}
}

func TestPrepareLoadsScripts(t *testing.T) {
	t.Parallel()
	_, rdb, _ := setup(t)
	got, err := rdb.ScriptExists(context.Background(),
		"e950836ed1e694540c503ef9972b8de518044d3b", "d75bb8b5bd13532ddedd17762e772346e39b321e").Result()
	if err != nil {
		t.Fatal(err)
	}
	if !got[0] || !got[1] {
		t.Fatalf("SCRIPT EXISTS = %v, want both loaded", got)
	}
}

func TestAcquireExtendRelease(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	start := time.Now()
	l, err := m.Acquire(ctx, "cycle", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := base64.StdEncoding.DecodeString(l.Token); err != nil || len(raw) != 16 {
		t.Fatalf("token %q is not 16 random bytes in base64", l.Token)
	}
	if got := rdb.Get(ctx, "lock:cycle").Val(); got != l.Token {
		t.Fatalf("key holds %q, want the token", got)
	}
	if got := l.Until.Sub(start); got > 5*time.Second || got < 4*time.Second {
		t.Fatalf("validity %v, want just under the 5s expiry", got)
	}

	rdb.PExpire(ctx, "lock:cycle", time.Second)
	if l, err = m.Extend(ctx, l); err != nil {
		t.Fatal(err)
	}
	if pttl := rdb.PTTL(ctx, "lock:cycle").Val(); pttl < 4*time.Second {
		t.Fatalf("PTTL after extend = %v, want the expiry reset to 5s", pttl)
	}
	if err := m.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, "lock:cycle").Val(); n != 0 {
		t.Fatal("key still exists after release")
	}
}

func TestWrongTokenChangesNothing(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	l, err := m.Acquire(ctx, "guarded", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	forged := l
	forged.Token = "not-the-token"
	if _, err := m.Extend(ctx, forged); !errors.Is(err, ErrNotHolder) {
		t.Errorf("extend with a wrong token: got %v, want ErrNotHolder", err)
	}
	if err := m.Release(ctx, forged); !errors.Is(err, ErrNotHolder) {
		t.Errorf("release with a wrong token: got %v, want ErrNotHolder", err)
	}
	if got := rdb.Get(ctx, "lock:guarded").Val(); got != l.Token {
		t.Fatalf("key holds %q after forged calls, want the holder's token", got)
	}
}

func TestReleaseAfterExpiry(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	l, err := m.Acquire(ctx, "gone", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rdb.Del(ctx, "lock:gone")
	if err := m.Release(ctx, l); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("got %v, want ErrNotHolder", err)
	}
	if _, err := m.Extend(ctx, l); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("got %v, want ErrNotHolder", err)
	}
}

func TestContentionHasOneWinner(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = m.Acquire(ctx, "contended", 10*time.Second) })
	}
	wg.Wait()
	winners := 0
	for _, err := range errs {
		switch {
		case err == nil:
			winners++
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrLocked):
		default:
			t.Errorf("unexpected error %v", err)
		}
	}
	if winners != 1 {
		t.Fatalf("got %d winners, want exactly 1", winners)
	}
}

func TestAcquireGivesUpWithRedsyncsMessage(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	if _, err := m.Acquire(ctx, "busy", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err := m.Acquire(ctx, "busy", 30*time.Second)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want ErrLocked", err)
	}
	if got, want := err.Error(), "lock already taken, locked nodes: [0]"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()
	m, _, srv := setup(t)
	ctx := context.Background()
	l, err := m.Acquire(ctx, "down", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := m.Extend(ctx, l); !errors.Is(err, ErrUnavailable) {
		t.Errorf("extend: got %v, want ErrUnavailable", err)
	}
	if err := m.Release(ctx, l); !errors.Is(err, ErrUnavailable) {
		t.Errorf("release: got %v, want ErrUnavailable", err)
	}
	if err := m.Prepare(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("prepare: got %v, want ErrUnavailable", err)
	}
}

func TestInvalidNamesNeverReachRedis(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	for _, name := range []string{"", strings.Repeat("a", 257), "a\x00b", "tab\there", "bad\xffutf8", "del\x7f", "c1\u0085"} {
		if _, err := m.Acquire(context.Background(), name, time.Second); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Acquire(%q): got %v, want ErrInvalidName", name, err)
		}
	}
	if keys := keysBesideMarker(t, rdb); len(keys) != 0 {
		t.Fatalf("keys %q after invalid names, want none", keys)
	}
	if err := ValidateName(strings.Repeat("é", 128)); err != nil {
		t.Errorf("256 bytes of UTF-8: %v", err)
	}
}

func FuzzValidateName(f *testing.F) {
	for _, s := range []string{"my-test-key", "", "a\x00", "ünï", strings.Repeat("x", 300), "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		err := ValidateName(name)
		if err != nil && !errors.Is(err, ErrInvalidName) {
			t.Fatalf("error %v does not match ErrInvalidName", err)
		}
		if err == nil && (name == "" || len(name) > MaxNameLen || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f })) {
			t.Fatalf("accepted %q", name)
		}
	})
}

func TestHoldKeepsTheLeasePastItsTTL(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	l, err := m.Acquire(ctx, "long", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	held := true
	_, err = m.Hold(ctx, l, func(ctx context.Context) error {
		for range 25 { // 2.5s: well past the 1s expiry
			if rdb.Get(ctx, "lock:long").Val() != l.Token {
				held = false
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !held {
		t.Fatal("the key left the holder while Hold was keeping it alive")
	}
	if err := m.Release(ctx, l); err != nil {
		t.Fatalf("release after a long hold: %v", err)
	}
}

func TestHoldNoticesLoss(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		steal func(*redis.Client)
	}{
		{"deleted", func(rdb *redis.Client) { rdb.Del(context.Background(), "lock:lost") }},
		{"stolen", func(rdb *redis.Client) { rdb.Set(context.Background(), "lock:lost", "someone-else", 0) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, rdb, _ := setup(t)
			l, err := m.Acquire(context.Background(), "lost", time.Second)
			if err != nil {
				t.Fatal(err)
			}
			tt.steal(rdb)
			cancelled := false
			_, err = m.Hold(context.Background(), l, func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					cancelled = true
					return ctx.Err()
				case <-time.After(10 * time.Second):
					return nil
				}
			})
			if !errors.Is(err, ErrLost) || !errors.Is(err, ErrNotHolder) {
				t.Fatalf("got %v, want ErrLost from ErrNotHolder", err)
			}
			if !cancelled {
				t.Fatal("work was not cancelled when the lease was lost")
			}
		})
	}
}

func TestHoldGivesUpWhenRedisStaysAwayPastValidity(t *testing.T) {
	t.Parallel()
	m, _, srv := setup(t)
	l, err := m.Acquire(context.Background(), "island", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err = m.Hold(context.Background(), l, func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	if !errors.Is(err, ErrLost) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrLost from ErrUnavailable", err)
	}
	if time.Now().Before(l.Until) {
		t.Fatal("gave up while the lease was still valid")
	}
}

// keysBesideMarker lists the keys in rdb but the restart marker, which
// Prepare writes.
func keysBesideMarker(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	keys, err := rdb.Keys(context.Background(), "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(keys, func(k string) bool { return k == markerKey })
}
