package lock

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// countingObserver counts what a Manager reports for metrics, as
// "method result".
type countingObserver struct {
	noObserver
	mu sync.Mutex
	n  map[string]int
}

func (o *countingObserver) add(k string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.n[k]++
}

func (o *countingObserver) Acquired(_, result string, _ time.Duration) { o.add("acquired " + result) }
func (o *countingObserver) Released(_, result string, _ time.Duration) { o.add("released " + result) }
func (o *countingObserver) Extended(_, result string)                  { o.add("extended " + result) }

// TestEventsAndMetricsCoverTheSameOperations: the events stream (written by
// the /v1 scripts, and by the demo's path) and the Observer that metrics
// read report the same operations, through every exported way in: /v1
// grants, refusals, extends and releases, a holder's lost lease, and the
// demo's lock and unlock.
func TestEventsAndMetricsCoverTheSameOperations(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	obs := &countingObserver{n: map[string]int{}}
	m := New(Config{Nodes: []*redis.Options{nodeOptions(srv.Addr, "pw")}, Observer: obs})
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	if err := m.Prepare(ctx); err != nil {
		t.Fatal(err)
	}

	a, err := m.TryAcquire(ctx, "same-a", Grant{TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.TryAcquire(ctx, "same-a", Grant{TTL: time.Minute}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second acquire: %v, want ErrLocked", err)
	}
	if _, _, err := m.AcquireWait(ctx, "same-a", Grant{TTL: time.Minute}, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("waiting acquire: %v, want ErrLocked", err)
	}
	if _, err := m.Renew(ctx, "same-a", a.Token, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseToken(ctx, "same-a", a.Token); err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseToken(ctx, "same-a", a.Token); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("second release: %v, want ErrNotHolder", err)
	}
	if _, err := m.Renew(ctx, "same-a", a.Token, 0); !errors.Is(err, ErrNotHolder) {
		t.Fatalf("extend after release: %v, want ErrNotHolder", err)
	}
	b, _, err := m.AcquireWait(ctx, "same-b", Grant{TTL: time.Minute}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ReleaseToken(ctx, "same-b", b.Token); err != nil {
		t.Fatal(err)
	}
	d, err := m.Acquire(ctx, "same-demo", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Release(ctx, d); err != nil {
		t.Fatal(err)
	}

	evs, err := m.EventsAfter(ctx, Position{}, 1000)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]int{}
	for _, se := range evs {
		var ev Event
		if err := json.Unmarshal(se.Data, &ev); err != nil {
			t.Fatalf("event %s: %v", se.Data, err)
		}
		events[ev.Type]++
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	for _, c := range []struct {
		event string
		got   int
		want  int // the Observer's count
	}{
		{EventAcquired, events[EventAcquired], obs.n["acquired granted"]},
		{EventContended, events[EventContended], obs.n["acquired locked"]},
		{EventExtended, events[EventExtended], obs.n["extended extended"]},
		{EventReleased, events[EventReleased], obs.n["released released"]},
		{EventLost, events[EventLost], obs.n["released not_holder"] + obs.n["extended not_holder"]},
	} {
		if c.got != c.want || c.got == 0 {
			t.Errorf("%d %q events, %d reports to the Observer; want the same, at least 1 (events %v, reports %v)",
				c.got, c.event, c.want, events, obs.n)
		}
	}
}
