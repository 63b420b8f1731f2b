package lock

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestStrictNames(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"job", "a", "Job-1.x_y:z@host+2", strings.Repeat("n", 256), "9lives"} {
		if err := ValidateStrictName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("n", 257), "..", ".hidden", "-x", "a*", "a b", "a/b", "ünï", "a\x00", "%00", "a?b", "{tag}"} {
		if err := ValidateStrictName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("%q: got %v, want ErrInvalidName", bad, err)
		}
	}
}

// TestStrictNameErrorsShowTheCharacter: a refused name names the character
// as it was sent, with its code point, never one byte of it.
func TestStrictNameErrorsShowTheCharacter(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"café": `name contains 'é' (U+00E9); allowed are`,
		"a b":  `name contains ' ' (U+0020)`,
		"x‮":   `name contains U+202E`,
		"日本":   `name must start with a letter or digit, not '日' (U+65E5)`,
		"-x":   `name must start with a letter or digit, not '-' (U+002D)`,
	} {
		err := ValidateStrictName(name)
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Ã") {
			t.Errorf("%q: got %v, want it to say %q", name, err, want)
		}
	}
}

// TestOwnersRefuseFormatCharacters: an owner with an invisible format
// character (Unicode Cf) is refused, naming it; printable text outside
// ASCII is fine.
func TestOwnersRefuseFormatCharacters(t *testing.T) {
	t.Parallel()
	for _, r := range []rune{0x200B, 0x200E, 0x200F, 0x202A, 0x202E, 0x2066, 0x2069, 0xFEFF, 0x00AD} {
		owner := "alice" + string(r) + "exe.txt"
		err := validateOwner(owner)
		if want := fmt.Sprintf("owner contains the invisible formatting character %U", r); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("%U: got %v, want %q", r, err, want)
		}
	}
	for _, ok := range []string{"", "alice", "café ☕", "日本語", "a-b_c d"} {
		if err := validateOwner(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
}

func TestTryAcquireGrantsIncreasingFences(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	var last int64
	for i := range 3 {
		l, err := m.TryAcquire(ctx, "fenced", Grant{TTL: 5 * time.Second, Owner: "worker-1"})
		if err != nil {
			t.Fatal(err)
		}
		if l.Fence <= last || l.Owner != "worker-1" || l.Token == "" {
			t.Fatalf("grant %d: fence %d after %d, owner %q", i, l.Fence, last, l.Owner)
		}
		last = l.Fence
		if i == 1 {
			// An expired lease does not reset the counter either.
			rdb.Del(ctx, "lock:fenced")
			continue
		}
		if err := m.Release(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	// A demo acquisition in between does not consume or reset fences.
	d, err := m.Acquire(ctx, "fenced", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Release(ctx, d); err != nil {
		t.Fatal(err)
	}
	l, err := m.TryAcquire(ctx, "fenced", Grant{TTL: time.Second})
	if err != nil || l.Fence <= last {
		t.Fatalf("after a demo lock: fence %d (err %v), want above %d", l.Fence, err, last)
	}
}

func TestTryAcquireWhenHeld(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	held, err := m.TryAcquire(ctx, "busy", Grant{TTL: 10 * time.Second, Owner: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.TryAcquire(ctx, "busy", Grant{TTL: 10 * time.Second, Owner: "bob"})
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) {
		t.Fatalf("got %v, want *LockedError", err)
	}
	if le.Holder.Owner != "alice" || le.Holder.Fence != held.Fence || le.Holder.TTL <= 9*time.Second {
		t.Fatalf("holder %+v, want alice with fence %d and ~10s left", le.Holder, held.Fence)
	}

	// A demo lock blocks the service API and shows no owner or fence.
	if _, err := m.Acquire(ctx, "demo-held", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	_, err = m.TryAcquire(ctx, "demo-held", Grant{TTL: time.Second})
	if !errors.As(err, &le) || le.Holder.Owner != "" || le.Holder.Fence != 0 || le.Holder.TTL <= 0 {
		t.Fatalf("got %v (%+v), want locked by an unfenced holder", err, le)
	}
}

func TestInspect(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	if h, held, err := m.Inspect(ctx, "free"); err != nil || held || h != (Holder{}) {
		t.Fatalf("free lock: %+v %v %v", h, held, err)
	}
	l, err := m.TryAcquire(ctx, "inspected", Grant{TTL: 3 * time.Second, Owner: "me"})
	if err != nil {
		t.Fatal(err)
	}
	h, held, err := m.Inspect(ctx, "inspected")
	if err != nil || !held || h.Owner != "me" || h.Fence != l.Fence || h.TTL <= 2*time.Second {
		t.Fatalf("held lock: %+v %v %v", h, held, err)
	}
	if err := m.Release(ctx, l); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := m.Inspect(ctx, "inspected"); held {
		t.Fatal("still held after release")
	}
}

func TestRenewByToken(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "renewed", Grant{TTL: 4 * time.Second, Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	rdb.PExpire(ctx, "lock:renewed", time.Second)
	// ttl 0: the TTL of the acquire, learnt from Redis, not from this process.
	r, err := m.Renew(ctx, "renewed", l.Token, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Fence != l.Fence || r.Owner != "o" || r.TTL != 4*time.Second {
		t.Fatalf("renewed lease %+v, want fence %d owner o ttl 4s", r, l.Fence)
	}
	if pttl := rdb.PTTL(ctx, "lock:renewed").Val(); pttl <= 3*time.Second {
		t.Fatalf("PTTL %v after renew, want about 4s", pttl)
	}
	if r, err = m.Renew(ctx, "renewed", l.Token, 10*time.Second); err != nil || r.TTL != 10*time.Second {
		t.Fatalf("renew with a ttl: %+v %v", r, err)
	}
	if _, err := m.Renew(ctx, "renewed", "wrong", 0); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("wrong token: got %v, want ErrNotHolder", err)
	}
	if got := rdb.Get(ctx, "lock:renewed").Val(); tokenOf(got) != l.Token {
		t.Fatal("a refused renew changed the lock")
	}
}

// TestFencedContention: many goroutines on two Managers (two replicas) take
// one lock in turns; at no time are there two holders, and fences grow in
// grant order.
func TestFencedContention(t *testing.T) {
	t.Parallel()
	a, _, srv := setup(t)
	b := replica(t, srv)
	ctx := context.Background()

	var mu sync.Mutex
	holders, maxHolders := 0, 0
	var fences []int64
	var wg sync.WaitGroup
	for i := range 8 {
		m := a
		if i%2 == 1 {
			m = b
		}
		wg.Go(func() {
			for got := 0; got < 5; {
				l, err := m.TryAcquire(ctx, "shared", Grant{TTL: 5 * time.Second})
				if errors.Is(err, ErrLocked) {
					time.Sleep(time.Millisecond)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				got++
				mu.Lock()
				holders++
				maxHolders = max(maxHolders, holders)
				fences = append(fences, l.Fence)
				mu.Unlock()
				time.Sleep(200 * time.Microsecond)
				mu.Lock()
				holders--
				mu.Unlock()
				if err := m.Release(ctx, l); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if maxHolders != 1 {
		t.Fatalf("saw %d holders at once", maxHolders)
	}
	for i := 1; i < len(fences); i++ {
		if fences[i] <= fences[i-1] {
			t.Fatalf("fence %d granted after %d", fences[i], fences[i-1])
		}
	}
	if len(fences) != 40 {
		t.Fatalf("got %d grants, want 40", len(fences))
	}
}

// tokenOf is the token in a /v1 lock value, "fence:ttl_ms:token:owner"
// (numbers in hexadecimal).
func tokenOf(v string) string {
	parts := strings.SplitN(v, ":", 4)
	if len(parts) != 4 {
		return ""
	}
	return parts[2]
}
