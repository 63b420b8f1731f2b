package lock

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestExpiryIsReportedOnce: a lease left to expire is reported once by the
// replica that granted it, after an extension made elsewhere; a released
// one is not reported.
func TestExpiryIsReportedOnce(t *testing.T) {
	t.Parallel()
	m, rdb, s := setup(t)
	listen(t, m)
	other := replica(t, s)
	ctx := context.Background()
	l, err := m.TryAcquire(ctx, "exp", Grant{TTL: 200 * time.Millisecond, Owner: "o"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Renew(ctx, "exp", l.Token, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	r, err := m.TryAcquire(ctx, "rel", Grant{TTL: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.ReleaseToken(ctx, "rel", r.Token); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var expired []string
	for time.Now().Before(deadline) {
		msgs, err := rdb.XRange(ctx, EventsStream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		expired = expired[:0]
		for _, msg := range msgs {
			if d := string(EntryData(msg)); strings.Contains(d, `"type":"expired"`) {
				expired = append(expired, d)
			}
		}
		if len(expired) > 0 && time.Since(l.Until) > time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(expired) != 1 || !strings.Contains(expired[0], `"name":"exp"`) || !strings.Contains(expired[0], `"fence":`) {
		t.Fatalf("expired events %q, want exactly one, for exp", expired)
	}
}

// TestEventsQuoteOwners: the scripts write events as JSON themselves; an
// owner with quotes, a backslash or non-ASCII text comes out intact.
func TestEventsQuoteOwners(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	for i, owner := range []string{`say "hi" \ ok`, "café ☕", ""} {
		name := fmt.Sprintf("quote-%d", i)
		l, err := m.TryAcquire(ctx, name, Grant{TTL: time.Minute, Owner: owner})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.ReleaseToken(ctx, name, l.Token); err != nil {
			t.Fatal(err)
		}
		msgs, err := rdb.XRange(ctx, EventsStream, "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, msg := range msgs {
			var ev Event
			data := EntryData(msg)
			if err := json.Unmarshal(data, &ev); err != nil {
				t.Fatalf("event %q is not JSON: %v", data, err)
			}
			if ev.Name == name {
				if ev.Owner != owner || ev.Fence != l.Fence || ev.Source != "v1" {
					t.Errorf("event %+v, want owner %q fence %d", ev, owner, l.Fence)
				}
				types = append(types, ev.Type)
			}
		}
		if !slices.Equal(types, []string{EventAcquired, EventReleased}) {
			t.Errorf("%s: events %q", name, types)
		}
	}
}
