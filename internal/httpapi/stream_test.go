package httpapi

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// sseClient is a bare GET /v1/events that reads only ids, for tests with
// many clients or big events (openEvents decodes every event).
type sseClient struct {
	body io.ReadCloser
	rd   *bufio.Reader
}

// dialEvents opens r's event stream with hc, after lastID when it is not
// "", and reads its ": connected" comment. It does not fail the test, so
// that goroutines may call it.
func dialEvents(ctx context.Context, hc *http.Client, r *replica, lastID string) (*sseClient, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/events", nil)
	if err != nil {
		return nil, err
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	c := &sseClient{body: resp.Body, rd: bufio.NewReader(resp.Body)}
	if resp.StatusCode != http.StatusOK {
		c.body.Close()
		return nil, fmt.Errorf("GET /v1/events: %d", resp.StatusCode)
	}
	if line, err := c.rd.ReadString('\n'); line != ": connected\n" {
		c.body.Close()
		return nil, fmt.Errorf("first line %q, %v", line, err)
	}
	return c, nil
}

// nextID reads up to the next event and returns its id.
func (c *sseClient) nextID() (string, error) {
	for {
		line, err := c.rd.ReadBytes('\n')
		if err != nil {
			return "", err
		}
		if id, ok := bytes.CutPrefix(line, []byte("id: ")); ok {
			return string(bytes.TrimSuffix(id, []byte("\n"))), nil
		}
	}
}

// ids reads the stream in a goroutine, which ends with the stream, and
// passes on every event's id.
func (c *sseClient) ids() <-chan string {
	out := make(chan string, 4096)
	go func() {
		defer close(out)
		for {
			id, err := c.nextID()
			if err != nil {
				return
			}
			out <- id
		}
	}()
	return out
}

// expectIDs fails the test unless exactly want, in order, comes from ids:
// a missing or repeated event shows as the first id that differs.
func expectIDs(t *testing.T, ids <-chan string, want []string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for i, w := range want {
		select {
		case got, ok := <-ids:
			if !ok {
				t.Fatalf("the stream ended after %d of %d events", i, len(want))
			}
			if got != w {
				t.Fatalf("event %d of %d: got %s, want %s", i, len(want), got, w)
			}
		case <-timeout:
			t.Fatalf("only %d of %d events within 20s", i, len(want))
		}
	}
}

// publish adds n copies of data to the events stream and returns their
// ids. It writes to Redis itself, as another replica would, so that the
// 500 ms bound lock puts on a publish (a request must not wait for it)
// does not fail a test on a busy machine.
func publish(t *testing.T, rdb *redis.Client, data string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: lock.EventsStream, Values: []any{"data", data}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// acquiredEvent is the data of an acquired event about name.
func acquiredEvent(name string) string {
	return `{"type":"acquired","name":"` + name + `"}`
}

// redisConns counts the connections Redis has from others than rdb, which
// asks, and how many of them are blocked (in XREAD BLOCK).
func redisConns(t *testing.T, rdb *redis.Client) (total, blocked int) {
	t.Helper()
	if n := rdb.PoolStats().TotalConns; n > 1 {
		t.Fatalf("the test's own client holds %d connections; it must hold one", n)
	}
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(list) {
		if strings.Contains(line, " cmd=client|list ") {
			continue
		}
		total++
		for f := range strings.FieldsSeq(line) {
			if flags, ok := strings.CutPrefix(f, "flags="); ok && strings.Contains(flags, "b") {
				blocked++
			}
		}
	}
	return total, blocked
}

// waitBlocked waits until Redis shows want blocked connections, and
// returns its counts then.
func waitBlocked(t *testing.T, rdb *redis.Client, want int) (total, blocked int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		total, blocked = redisConns(t, rdb)
		if blocked == want || time.Now().After(deadline) {
			return total, blocked
		}
	}
}

// TestStreamManyClientsOneReader opens many idle streams on one replica:
// they hold no more Redis connections than one stream does (each used to
// hold a blocked XREAD of its own), and every one receives each event.
// Once they are gone the replica's reader stops.
//
// Not parallel: the goroutine check at the end needs the process to itself.
func TestStreamManyClientsOneReader(t *testing.T) {
	clients := 1000
	if testing.Short() {
		clients = 200
	}
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]
	before := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}

	idle, _ := redisConns(t, c.rdb)
	first, err := dialEvents(ctx, hc, r, "")
	if err != nil {
		t.Fatal(err)
	}
	streams := []*sseClient{first}
	defer func() {
		for _, s := range streams {
			s.body.Close()
		}
	}()
	oneTotal, oneBlocked := waitBlocked(t, c.rdb, 1)

	// Connect the rest, a few at a time.
	var mu sync.Mutex
	var failed []error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for range clients - 1 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s, err := dialEvents(ctx, hc, r, "")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			streams = append(streams, s)
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d streams did not open, the first: %v", len(failed), failed[0])
	}
	manyTotal, manyBlocked := waitBlocked(t, c.rdb, 1)
	t.Logf("Redis connections: %d with no stream, %d (%d blocked) with 1, %d (%d blocked) with %d",
		idle, oneTotal, oneBlocked, manyTotal, manyBlocked, len(streams))
	if oneBlocked != 1 || manyBlocked != 1 || manyTotal > oneTotal {
		t.Fatalf("%d streams hold %d Redis connections (%d blocked); one stream held %d (%d blocked)",
			len(streams), manyTotal, manyBlocked, oneTotal, oneBlocked)
	}

	id := publish(t, c.rdb, acquiredEvent("fan-out"), 1)[0]
	for i, s := range streams {
		if got, err := s.nextID(); got != id {
			t.Fatalf("stream %d: got %q (%v), want %s", i, got, err, id)
		}
	}

	// Every stream ends: the reader leaves Redis within streamBlock, and
	// nothing the streams started is left.
	for _, s := range streams {
		s.body.Close()
	}
	streams = nil
	tr.CloseIdleConnections()
	if _, blocked := waitBlocked(t, c.rdb, 0); blocked != 0 {
		t.Fatalf("%d connections still blocked after every stream ended", blocked)
	}
	leak := goleak.Find(before)
	for deadline := time.Now().Add(5 * time.Second); leak != nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		leak = goleak.Find(before)
	}
	if leak != nil {
		t.Fatalf("goroutines left after every stream ended: %v", leak)
	}

	// A new stream starts the reader again.
	s, err := dialEvents(ctx, hc, r, "")
	if err != nil {
		t.Fatal(err)
	}
	streams = append(streams, s)
	id = publish(t, c.rdb, acquiredEvent("restarted"), 1)[0]
	if got, err := s.nextID(); got != id {
		t.Fatalf("after a restart: got %q (%v), want %s", got, err, id)
	}
}

// TestStreamResume reconnects with Last-Event-ID from within the replica's
// ring of recent events, from before it while events keep coming, and from
// ahead of the replica: each time the client gets every event after its id
// once, in order.
func TestStreamResume(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	open := func(lastID string) <-chan string {
		t.Helper()
		s, err := dialEvents(ctx, hc, r, lastID)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.body.Close() })
		return s.ids()
	}

	// One stream reads along throughout: it keeps the replica's reader and
	// its ring, and shows when the reader has passed an event on.
	along := open("")
	ids := publish(t, c.rdb, acquiredEvent("resume"), 30)
	expectIDs(t, along, ids)

	// Within the ring: served from memory, so even events since deleted
	// from the stream are resent, and live ones follow.
	if err := c.rdb.XDel(ctx, lock.EventsStream, ids[10:]...).Err(); err != nil {
		t.Fatal(err)
	}
	inRing := open(ids[9])
	more := publish(t, c.rdb, acquiredEvent("resume"), 2)
	expectIDs(t, inRing, append(ids[10:], more...))
	expectIDs(t, along, more)

	// Before the ring: caught up from the stream while more events arrive,
	// then live.
	var burst []string
	for len(burst) < streamRing+200 {
		// In steps that a stream on a busy machine keeps up with: it is
		// dropped when a buffer's worth (streamBuffer) is waiting.
		ids := publish(t, c.rdb, acquiredEvent("resume"), streamLiveRead)
		expectIDs(t, along, ids)
		burst = append(burst, ids...)
	}
	// The ring now starts within the burst.
	old := open(more[len(more)-1])
	var during []string
	published := make(chan struct{})
	go func() {
		defer close(published)
		for range streamLiveRead {
			id, err := c.rdb.XAdd(ctx, &redis.XAddArgs{Stream: lock.EventsStream, Values: []any{"data", acquiredEvent("resume")}}).Result()
			if err != nil {
				t.Error(err)
				return
			}
			during = append(during, id)
		}
	}()
	<-published
	end := publish(t, c.rdb, acquiredEvent("resume"), 1)
	expectIDs(t, old, slices.Concat(burst, during, end))
	expectIDs(t, along, slices.Concat(during, end))

	// Ahead of the replica's reader (a client coming from a replica that
	// read further): what it has is not sent again.
	ms := parseStreamID(end[0]).MS + 60_000
	ahead := open(fmt.Sprintf("%d-2", ms))
	for seq := 1; seq <= 3; seq++ {
		if err := c.rdb.XAdd(ctx, &redis.XAddArgs{Stream: lock.EventsStream, ID: fmt.Sprintf("%d-%d", ms, seq),
			Values: []any{"data", acquiredEvent("ahead")}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	end = publish(t, c.rdb, acquiredEvent("resume"), 1)
	expectIDs(t, ahead, []string{fmt.Sprintf("%d-3", ms), end[0]})
}
