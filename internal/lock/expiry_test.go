package lock

import (
	"context"
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
			if d, _ := msg.Values["data"].(string); strings.Contains(d, `"type":"expired"`) {
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
