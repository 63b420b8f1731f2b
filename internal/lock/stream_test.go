package lock

import (
	"context"
	"strings"
	"sync"
	"testing"
)

// TestEventReadsShareASmallPool: many readers of the events stream at
// once (SSE clients resuming together) queue for the events pool's few
// connections instead of opening one each. Redis holds every command for
// 300 ms, so that the reads overlap.
func TestEventReadsShareASmallPool(t *testing.T) {
	t.Parallel()
	m, rdb, _ := setup(t)
	ctx := context.Background()
	if err := rdb.Do(ctx, "CLIENT", "PAUSE", "300", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 * EventsPoolSize {
		wg.Go(func() {
			if _, err := m.EventsAfter(ctx, Position{}, 10); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// The events pool's connections are those whose last command was a
	// read of the stream; the lock calls' ran scripts.
	n := strings.Count(list, " cmd=xread ")
	if n == 0 || n > EventsPoolSize {
		t.Fatalf("%d connections read the stream after %d reads at once, want 1 to %d:\n%s", n, 4*EventsPoolSize, EventsPoolSize, list)
	}
}
