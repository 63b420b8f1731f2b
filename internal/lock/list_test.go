package lock

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// listAll pages through List and returns the names seen, in order.
func listAll(t *testing.T, m *Manager, prefix string, limit int) []string {
	t.Helper()
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("listing never ends")
		}
		entries, next, err := m.List(context.Background(), prefix, limit, cursor)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) > limit {
			t.Fatalf("page of %d entries, limit %d", len(entries), limit)
		}
		for _, e := range entries {
			names = append(names, e.Name)
		}
		if next == "" {
			return names
		}
		cursor = next
	}
}

func TestListPagesThroughEveryLockOnce(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	var want []string
	for i := range 57 {
		name := fmt.Sprintf("batch.%02d", i)
		if _, err := m.TryAcquire(ctx, name, Grant{TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	// A demo lock and a key written by someone else are listed too; other
	// keys, fence counters and metadata are not.
	if _, err := m.Acquire(ctx, "batch.demo", time.Minute); err != nil {
		t.Fatal(err)
	}
	rdb.Set(ctx, "lock:batch.raw", "x", 0)
	rdb.Set(ctx, "unrelated", "x", 0)
	want = append(want, "batch.demo", "batch.raw")
	slices.Sort(want)

	for _, limit := range []int{1, 3, 10, 1000} {
		got := listAll(t, m, "batch.", limit)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("limit %d: listed %d names %v, want %d", limit, len(got), got, len(want))
		}
	}
	if got := listAll(t, m, "nothing-here", 5); len(got) != 0 {
		t.Errorf("prefix with no locks listed %v", got)
	}
}

func TestListShowsHolders(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "shown", Grant{TTL: time.Minute, Owner: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Acquire(ctx, "shown-demo", time.Minute); err != nil {
		t.Fatal(err)
	}
	entries, next, err := m.List(ctx, "shown", 10, "")
	if err != nil || next != "" || len(entries) != 2 {
		t.Fatalf("got %+v next %q err %v", entries, next, err)
	}
	for _, e := range entries {
		switch {
		case e.Name == "shown" && e.Holder.Owner == "carol" && e.Holder.Fence == l.Fence && e.Holder.TTL > 50*time.Second:
		case e.Name == "shown-demo" && e.Holder.Owner == "" && e.Holder.Fence == 0 && e.Holder.TTL > 50*time.Second:
		default:
			t.Errorf("unexpected entry %+v", e)
		}
	}
}

func TestListTakesPrefixLiterally(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	rdb.Set(ctx, "lock:a*b", "x", time.Minute)
	rdb.Set(ctx, "lock:axb", "x", time.Minute)
	rdb.Set(ctx, "lock:a?c", "x", time.Minute)
	if got := listAll(t, m, "a*", 10); !slices.Equal(got, []string{"a*b"}) {
		t.Errorf("prefix a* listed %v, want only a*b", got)
	}
}

func TestListRejectsBadArguments(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	for _, c := range []struct {
		prefix, cursor string
		limit          int
	}{
		{limit: -1}, {limit: MaxListLimit + 1},
		{prefix: strings.Repeat("p", 257), limit: 1}, {prefix: "a\nb", limit: 1},
		{cursor: "%%%", limit: 1}, {cursor: "bm90IGpzb24", limit: 1}, // "not json"
		{cursor: strings.Repeat("A", MaxCursorLen+1), limit: 1},
	} {
		if _, _, err := m.List(context.Background(), c.prefix, c.limit, c.cursor); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%+v: got %v, want ErrInvalidArgument", c, err)
		}
	}
}

func TestCheckFence(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	var stale *StaleFenceError
	if err := m.Check(ctx, "checked", 1); !errors.As(err, &stale) || stale.Current != 0 {
		t.Fatalf("free lock: got %v, want stale with current 0", err)
	}
	first, err := m.TryAcquire(ctx, "checked", Grant{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Release(ctx, first); err != nil {
		t.Fatal(err)
	}
	second, err := m.TryAcquire(ctx, "checked", Grant{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(ctx, "checked", second.Fence); err != nil {
		t.Fatalf("live fence: %v", err)
	}
	for _, f := range []int64{first.Fence, second.Fence + 1} {
		if err := m.Check(ctx, "checked", f); !errors.As(err, &stale) || !errors.Is(err, ErrStaleFence) || stale.Current != second.Fence {
			t.Errorf("fence %d: got %v, want stale with current %d", f, err, second.Fence)
		}
	}
	if err := m.Check(ctx, "checked", 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("fence 0: got %v, want ErrInvalidArgument", err)
	}
}

func TestFencedAPIRejectsBadArgumentsBeforeRedis(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	acquire := func(g Grant) func() error {
		return func() error { _, err := m.TryAcquire(ctx, "x", g); return err }
	}
	wait := func(d time.Duration) func() error {
		return func() error { _, _, err := m.AcquireWait(ctx, "x", Grant{TTL: time.Second}, d); return err }
	}
	renew := func(token string, ttl time.Duration) func() error {
		return func() error { _, err := m.Renew(ctx, "x", token, ttl); return err }
	}
	for _, c := range []struct {
		what string
		call func() error
	}{
		{"ttl too short", acquire(Grant{TTL: MinTTL - 1})},
		{"ttl too long", acquire(Grant{TTL: MaxTTL + 1})},
		{"owner too long", acquire(Grant{TTL: time.Second, Owner: strings.Repeat("o", MaxOwnerLen+1)})},
		{"owner with a tab", acquire(Grant{TTL: time.Second, Owner: "a\tb"})},
		{"owner not UTF-8", acquire(Grant{TTL: time.Second, Owner: "\xff"})},
		{"negative wait", wait(-time.Second)},
		{"wait too long", wait(MaxWait + 1)},
		{"empty token", renew("", 0)},
		{"long token", renew(strings.Repeat("t", MaxTokenLen+1), 0)},
		{"renew ttl too short", renew("t", time.Millisecond)},
		{"release without token", func() error { return m.ReleaseToken(ctx, "x", "") }},
	} {
		if err := c.call(); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: got %v, want ErrInvalidArgument", c.what, err)
		}
	}
	if keys := keysBesideMarker(t, rdb); len(keys) != 0 {
		t.Errorf("bad arguments left keys %q in Redis", keys)
	}
}

func TestTokensAreURLSafeAndDistinct(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	seen := map[string]bool{}
	urlSafe := regexp.MustCompile(`^[A-Za-z0-9_-]{22,}$`) // 22 chars of base64 = 132 bits
	for i := range 20 {
		l, err := m.TryAcquire(ctx, fmt.Sprintf("tok%d", i), Grant{TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if !urlSafe.MatchString(l.Token) || seen[l.Token] {
			t.Fatalf("token %q: not URL-safe, too short or repeated", l.Token)
		}
		seen[l.Token] = true
	}
}

// A SCAN batch can hold more keys than fit in a page; the cursor carries the
// rest, and the next page starts with them (still held ones only).
func TestListCursorCarriesTheRestOfABatch(t *testing.T) {
	t.Parallel()
	m, _, _ := setup(t)
	ctx := context.Background()
	for _, n := range []string{"rest.a", "rest.b", "rest.c"} {
		if _, err := m.TryAcquire(ctx, n, Grant{TTL: time.Minute}); err != nil {
			t.Fatal(err)
		}
	}
	cursor := encodeCursor(listCursor{Done: true, Pending: []string{"rest.a", "rest.gone", "other", "rest.b", "rest.c"}})
	entries, next, err := m.List(ctx, "rest.", 2, cursor)
	if err != nil || len(entries) != 1 || entries[0].Name != "rest.a" || next == "" {
		// rest.gone is not held and is dropped after taking its place.
		t.Fatalf("first page %+v next %q err %v, want rest.a and more to come", entries, next, err)
	}
	entries, next, err = m.List(ctx, "rest.", 2, next)
	if err != nil || len(entries) != 2 || entries[0].Name != "rest.b" || entries[1].Name != "rest.c" || next != "" {
		t.Fatalf("second page %+v next %q err %v, want rest.b, rest.c and the end", entries, next, err)
	}
}
