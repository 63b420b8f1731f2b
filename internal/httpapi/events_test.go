package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"

	"github.com/getkin/kin-openapi/openapi3filter"
)

func init() {
	// kin-openapi checks a body only in the media types it can decode; the
	// stream's body is text, and its schema says so.
	openapi3filter.RegisterBodyDecoder("text/event-stream", openapi3filter.PlainBodyDecoder)
}

// eventJSON is an event's data as /v1/events sends it: the stored event
// with its stream id in front.
type eventJSON struct {
	ID string `json:"id"`
	lock.Event
}

// sseEvent is one event as a client of /v1/events receives it.
type sseEvent struct {
	id, typ string
	data    eventJSON
}

// eventStream is an open GET /v1/events.
type eventStream struct {
	events chan sseEvent // closed when the stream ends
	stop   func()        // closes the stream before the test ends
	mu     sync.Mutex
	raw    strings.Builder // everything received, to look for tokens
}

func (s *eventStream) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.raw.String()
}

// openEvents opens r's event stream, after lastID when it is not "", and
// reads it until the test ends. It is a plain client: the validating one
// would wait for the end of the stream.
func openEvents(t *testing.T, r *replica, lastID string, header http.Header) *eventStream {
	t.Helper()
	s, _, err := tryOpenEvents(t, r, lastID, header)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tryOpenEvents is openEvents, which returns the answer's status and an
// error when the stream did not open.
func tryOpenEvents(t *testing.T, r *replica, lastID string, header http.Header) (*eventStream, int, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/events", nil)
	for k, v := range header {
		req.Header[k] = v
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		resp.Body.Close()
		return nil, resp.StatusCode, fmt.Errorf("GET /v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	done := make(chan struct{})
	s := &eventStream{events: make(chan sseEvent, 1000), stop: func() { cancel(); resp.Body.Close(); <-done }}
	t.Cleanup(s.stop)
	go func() {
		defer close(done)
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		var ev sseEvent
		for sc.Scan() {
			if ctx.Err() != nil {
				return // stopped: the last line may be cut short
			}
			line := sc.Text()
			s.mu.Lock()
			s.raw.WriteString(line + "\n")
			s.mu.Unlock()
			switch k, v, _ := strings.Cut(line, ": "); k {
			case "id":
				ev.id = v
			case "event":
				ev.typ = v
			case "data":
				dec := json.NewDecoder(strings.NewReader(v))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&ev.data); err != nil {
					t.Errorf("event data %s: %v", v, err)
				}
			case "":
				if ev.id != "" {
					s.events <- ev
				}
				ev = sseEvent{}
			}
		}
	}()
	return s, resp.StatusCode, nil
}

// next returns the next event about one of names, failing the test when
// none comes within a few seconds.
func (s *eventStream) next(t *testing.T, names ...string) sseEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				t.Fatalf("the stream ended; received:\n%s", s.text())
			}
			if slices.Contains(names, ev.data.Name) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no event about %v within 5s; received:\n%s", names, s.text())
		}
	}
}

func TestEventsFromBothReplicas(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{LockExpiry: 2 * time.Second, CriticalSection: 200 * time.Millisecond})
	a, b := c.replicas[0], c.replicas[1]
	stream := openEvents(t, a, "", nil)

	l1 := a.acquire(t, "ev-job", `{"ttl":"10s","owner":"alice"}`)
	if r := post(t, b.url+"/v1/locks/ev-job/acquire", `{"owner":"bob"}`); r.status != http.StatusConflict {
		t.Fatalf("second acquire: %d %s", r.status, r.body)
	}
	if r := post(t, b.url+"/v1/locks/ev-job/extend", tokenBody(l1.Token)); r.status != http.StatusOK {
		t.Fatalf("extend: %d %s", r.status, r.body)
	}
	if r := post(t, a.url+"/v1/locks/ev-job/release", tokenBody(l1.Token)); r.status != http.StatusNoContent {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	l2 := b.acquire(t, "ev-job", `{"ttl":"10s","owner":"bob"}`)
	if r := post(t, a.url+"/v1/locks/ev-job/release", tokenBody(l2.Token)); r.status != http.StatusNoContent {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	if r := get(t, b.url+"/lock?resource_id=ev-demo"); r.status != http.StatusOK {
		t.Fatalf("demo: %d %s", r.status, r.body)
	}

	want := []eventJSON{
		{Event: lock.Event{Type: evAcquired, Replica: "replica-0", Name: "ev-job", Fence: l1.Fence, Owner: "alice", TTLMS: 10_000, Source: "v1"}},
		{Event: lock.Event{Type: evContended, Replica: "replica-1", Name: "ev-job", Fence: l1.Fence, Owner: "bob", Source: "v1"}},
		{Event: lock.Event{Type: evExtended, Replica: "replica-1", Name: "ev-job", Fence: l1.Fence, Owner: "alice", TTLMS: 10_000, Source: "v1"}},
		{Event: lock.Event{Type: evReleased, Replica: "replica-0", Name: "ev-job", Fence: l1.Fence, Owner: "alice", Source: "v1"}},
		{Event: lock.Event{Type: evAcquired, Replica: "replica-1", Name: "ev-job", Fence: l2.Fence, Owner: "bob", TTLMS: 10_000, Source: "v1"}},
		{Event: lock.Event{Type: evReleased, Replica: "replica-0", Name: "ev-job", Fence: l2.Fence, Owner: "bob", Source: "v1"}},
		{Event: lock.Event{Type: evAcquired, Replica: "replica-1", Name: "ev-demo", TTLMS: 2000, Source: "demo"}},
		{Event: lock.Event{Type: evReleased, Replica: "replica-1", Name: "ev-demo", TTLMS: 2000, Source: "demo"}},
	}
	var got []sseEvent
	start := time.Now()
	for i, w := range want {
		ev := stream.next(t, "ev-job", "ev-demo")
		got = append(got, ev)
		d := ev.data
		if ev.id != d.ID || ev.typ != d.Type || (i > 0 && !idLess(got[i-1].id, ev.id)) {
			t.Errorf("event %d: id %q type %q, data %+v; ids must rise", i, ev.id, ev.typ, d)
		}
		if at, err := time.Parse(time.RFC3339, d.Time); err != nil || len(d.Time) != len("2006-01-02T15:04:05.000Z") ||
			at.Before(start.Add(-time.Minute)) || at.After(time.Now()) {
			t.Errorf("event %d: time %q", i, d.Time)
		}
		if d.Type == evContended {
			if d.TTLMS <= 0 || d.TTLMS > 10_000 {
				t.Errorf("contended: ttl_ms %d, want the holder's time left", d.TTLMS)
			}
			d.TTLMS = 0
		}
		d.ID, d.Time, d.Commands = "", "", nil
		if !reflect.DeepEqual(d, w) {
			t.Errorf("event %d:\n got %+v\nwant %+v", i, d, w)
		}
	}

	// The demo's events show its Redis commands as the profiler does,
	// without the token.
	acquired, released := got[6].data.Commands, got[7].data.Commands
	if want := []string{`"set" "lock:ev-demo" "…" "ex" "2" "nx"`}; !slices.Equal(acquired, want) {
		t.Errorf("demo acquired commands %q, want %q", acquired, want)
	}
	if n := len(released); n < 2 || released[0] != acquired[0] ||
		released[n-1] != `"evalsha" "e950836ed1e694540c503ef9972b8de518044d3b" "1" "lock:ev-demo" "…"` {
		t.Errorf("demo released commands %q", released)
	}
	// lockd's own bookkeeping (the events' XADDs) is not the demo's trace.
	for _, line := range released {
		if strings.Contains(strings.ToLower(line), "xadd") {
			t.Errorf("the demo's trace shows lockd's event write: %q", released)
		}
	}

	// Tokens appear nowhere: not in the stream, not in Redis.
	stored, err := c.rdb.XRange(context.Background(), "lockd:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{l1.Token, l2.Token} {
		if strings.Contains(stream.text(), tok) || strings.Contains(fmt.Sprint(stored), tok) {
			t.Errorf("a token is in the events")
		}
	}

	// Last-Event-ID: a new stream, on the other replica, resumes after the
	// first event.
	replay := openEvents(t, b, got[0].id, nil)
	for i := 1; i < len(got); i++ {
		if ev := replay.next(t, "ev-job", "ev-demo"); ev.id != got[i].id {
			t.Fatalf("replay event %d: %s %s, want %s", i, ev.id, ev.typ, got[i].id)
		}
	}
}

// idLess orders stream ids ("ms-seq").
func idLess(a, b string) bool { return parseStreamID(a).Less(parseStreamID(b)) }

// parseStreamID reads a stream id that Redis gave.
func parseStreamID(s string) lock.EventID {
	id, _ := lock.ParseEventID(s)
	return id
}

func TestEventsExpiry(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2, Options{})
	a, b := c.replicas[0], c.replicas[1]
	stream := openEvents(t, b, "", nil)

	// Extended on the other replica, then left to expire: the granting
	// replica reports it once, after the extension's TTL.
	l := a.acquire(t, "ev-expiring", `{"ttl":"300ms","owner":"sleepy"}`)
	if r := post(t, b.url+"/v1/locks/ev-expiring/extend", tokenBody(l.Token)); r.status != http.StatusOK {
		t.Fatalf("extend: %d %s", r.status, r.body)
	}
	extended := time.Now()
	for _, want := range []string{evAcquired, evExtended, evExpired} {
		if ev := stream.next(t, "ev-expiring"); ev.typ != want || ev.data.Fence != l.Fence {
			t.Fatalf("got %s %+v, want %s", ev.typ, ev.data, want)
		}
	}
	if d := time.Since(extended); d < 250*time.Millisecond {
		t.Errorf("expired %v after the extension, before its TTL", d)
	}
	// A lease released on another replica does not expire.
	l = a.acquire(t, "ev-released", `{"ttl":"300ms"}`)
	if r := post(t, b.url+"/v1/locks/ev-released/release", tokenBody(l.Token)); r.status != http.StatusNoContent {
		t.Fatalf("release: %d", r.status)
	}
	a.acquire(t, "ev-marker", `{"ttl":"1s"}`) // its expiry comes after ev-released's would
	for _, want := range []string{evAcquired, evReleased, evAcquired, evExpired} {
		if ev := stream.next(t, "ev-released", "ev-marker"); ev.typ != want {
			t.Fatalf("got %s %+v, want %s", ev.typ, ev.data, want)
		}
	}
}

// TestEventsSlowConsumerIsDropped is not parallel: it keeps both cores
// busy for a second, and tests beside it have 50 ms Redis timeouts.
func TestEventsSlowConsumerIsDropped(t *testing.T) {
	c := startCluster(t, 1, Options{})
	r := c.replicas[0]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.url+"/v1/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Another client reads along: the slow one must not hold it up, and
	// once it has every event, the replica has passed them all on.
	fast, err := dialEvents(ctx, http.DefaultClient, r, "")
	if err != nil {
		t.Fatal(err)
	}
	defer fast.body.Close()
	along := fast.ids()

	// The client reads nothing while far more arrives than the socket
	// buffers and the stream's buffer together hold.
	const sent = 1500
	ids := publish(t, c.rdb, acquiredEvent(strings.Repeat("x", 8<<10)), sent)
	expectIDs(t, along, ids)
	received := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "id: ") {
				received++
			}
		}
	}()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		cancel()
		<-ended
		t.Fatalf("the stream went on; %d events read", received)
	}
	if received >= sent {
		t.Errorf("received all %d events; the slow consumer was not dropped", received)
	}
	// The replica itself, and the other stream, are unaffected.
	r.acquire(t, "after-slow", "")
	select {
	case id, ok := <-along:
		if !ok || !idLess(ids[sent-1], id) {
			t.Errorf("after the slow stream ended, the other got %q", id)
		}
	case <-time.After(5 * time.Second):
		t.Error("after the slow stream ended, the other got nothing within 5s")
	}
}

func TestEventsEndOnDraining(t *testing.T) {
	t.Parallel()
	draining := make(chan struct{})
	c := startCluster(t, 1, Options{Draining: draining})
	r := c.replicas[0]
	done := make(chan response, 1)
	go func() { done <- call(t, context.Background(), http.MethodGet, r.url+"/v1/events", "") }()
	// Once the stream's reader blocks in XREAD, the stream is open.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		list, _ := c.rdb.ClientList(context.Background()).Result()
		if strings.Contains(list, "cmd=xread") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no XREAD in:\n%s", list)
		}
	}
	close(draining)
	start := time.Now()
	var resp response
	select {
	case resp = <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("the stream is still open after draining began")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the stream ended %v after draining began", d)
	}
	// The answer (headers and body) was validated against the contract.
	if resp.status != http.StatusOK || !strings.HasPrefix(string(resp.body), ": connected\n\n") {
		t.Errorf("got %d %q", resp.status, resp.body)
	}
}

func TestEventsNeedToken(t *testing.T) {
	t.Parallel()
	const token = "events-token-0123456789"
	c := startCluster(t, 1, Options{APITokens: []string{token}})
	r := c.replicas[0]
	if resp := get(t, r.url+"/v1/events"); resp.status != http.StatusUnauthorized || resp.errorCode() != "unauthenticated" {
		t.Errorf("without a token: %d %s", resp.status, resp.body)
	}
	if resp := callWith(t, context.Background(), http.MethodGet, r.url+"/v1/events", "",
		http.Header{"Last-Event-ID": {"not-an-id"}, "Authorization": {"Bearer " + token}}); resp.status != http.StatusBadRequest {
		t.Errorf("bad Last-Event-ID: %d %s", resp.status, resp.body)
	}
	// An id from the far future was never sent: refused, not a stream
	// that waits in silence until the clock gets there.
	if resp := callWith(t, context.Background(), http.MethodGet, r.url+"/v1/events", "",
		http.Header{"Last-Event-ID": {"99999999999999-0"}, "Authorization": {"Bearer " + token}}); resp.status != http.StatusBadRequest || resp.errorCode() != "invalid_argument" {
		t.Errorf("Last-Event-ID from the future: %d %s", resp.status, resp.body)
	}
	stream := openEvents(t, r, "", http.Header{"Authorization": {"Bearer " + token}})
	callWith(t, context.Background(), http.MethodPost, r.url+"/v1/locks/with-token/acquire", "", http.Header{"Authorization": {"Bearer " + token}})
	if ev := stream.next(t, "with-token"); ev.typ != evAcquired {
		t.Errorf("got %s", ev.typ)
	}
}
