package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/apitest"
	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/procs"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// startShardedPair serves two replicas over a new Redis Cluster of three
// masters, and returns them, a client of the cluster, and the shards'
// tags.
func startShardedPair(t *testing.T) (a, b *replica, rdb *redis.ClusterClient, shards []string) {
	t.Helper()
	c := redistest.StartCluster(t, redistest.ClusterOptions{Replicas: -1})
	masters := func() []*procs.Redis { return must(t, c.Masters)() }
	rs := startReplicasOn(t, 2, lock.Config{Cluster: c.ClientOptions()}, masters, Options{})
	rdb = redis.NewClusterClient(c.ClientOptions())
	t.Cleanup(func() { rdb.Close() })
	if shards = rs[0].locks.EventShards(); len(shards) != 3 {
		t.Fatalf("shards %q, want 3", shards)
	}
	return rs[0], rs[1], rdb, shards
}

// shardEvent is an event as a shard's stream holds it.
type shardEvent struct {
	shard string
	id    lock.EventID
}

// advanced returns the one shard whose entry rose from prev to next, two
// positions naming the same shards, and fails the test unless there is
// exactly one.
func advanced(t *testing.T, m *lock.Manager, prev, next string) shardEvent {
	t.Helper()
	p, err := m.ParsePosition(prev)
	if err != nil {
		t.Fatal(err)
	}
	q, err := m.ParsePosition(next)
	if err != nil {
		t.Fatal(err)
	}
	var moved []shardEvent
	for tag, id := range q.All() {
		if was, ok := p.Get(tag); ok && was.Less(id) {
			moved = append(moved, shardEvent{tag, id})
		} else if !ok || id != was {
			t.Fatalf("from %s to %s: shard %s went back or appeared", prev, next, tag)
		}
	}
	if len(moved) != 1 || p.Len() != q.Len() {
		t.Fatalf("from %s to %s: %d shards moved, want 1", prev, next, len(moved))
	}
	return moved[0]
}

// resumer reads a replica's events as a browser's EventSource does: when
// the stream does not open (503: Redis did not answer in time, as on a
// busy machine) or ends (a catch-up read failed), it opens it again after
// the last id it got. Every resume must be exact, so this hides nothing.
type resumer struct {
	t    *testing.T
	r    *replica
	last string
	s    *eventStream
}

func resume(t *testing.T, r *replica, last string) *resumer {
	t.Helper()
	c := &resumer{t: t, r: r, last: last}
	c.open()
	return c
}

func (c *resumer) open() {
	c.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		s, status, err := tryOpenEvents(c.t, c.r, c.last, nil)
		if err == nil {
			c.s = s
			return
		}
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			c.t.Fatal(err)
		}
		c.t.Logf("%v; again after %s", err, c.last)
	}
}

// next returns the next event about one of names, failing the test when
// none comes within 10 s.
func (c *resumer) next(names ...string) sseEvent {
	c.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-c.s.events:
			if !ok {
				c.t.Logf("the stream ended; again after %s", c.last)
				c.s.stop()
				c.open()
				continue
			}
			c.last = ev.id
			if slices.Contains(names, ev.data.Name) {
				return ev
			}
		case <-timeout:
			c.t.Fatalf("no event about %v within 10s; received:\n%s", names, c.s.text())
		}
	}
}

// none fails the test when an event comes within d.
func (c *resumer) none(d time.Duration) {
	c.t.Helper()
	select {
	case ev, ok := <-c.s.events:
		if ok {
			c.t.Errorf("an event after the last: %s %+v", ev.id, ev.data)
		}
	case <-time.After(d):
	}
}

func (c *resumer) stop() { c.s.stop() }

// TestEventsAcrossShards runs two replicas over a three-master Redis
// Cluster. Locks on every shard change while a client reads /v1/events
// on one replica; half-way it reconnects to the other with Last-Event-ID,
// and gets exactly the rest of each shard's stream: nothing lost, nothing
// twice, each lock's events in order.
func TestEventsAcrossShards(t *testing.T) {
	t.Parallel()
	a, b, rdb, shards := startShardedPair(t)
	ctx := context.Background()
	// Thirty names fall on every shard (checked below: each stream has
	// events).
	names := make([]string, 30)
	for i := range names {
		names[i] = fmt.Sprintf("shard-ev-%d", i)
	}
	// Where the streams start: every stream is empty.
	var start []string
	for _, tag := range shards {
		start = append(start, tag+".0-0")
	}
	from := strings.Join(start, "~")
	if p, err := a.locks.ParsePosition(from); err != nil || p.String() != from {
		t.Fatalf("ParsePosition(%s) = %s, %v", from, p, err)
	}

	live := resume(t, a, "")
	first := resume(t, a, from)

	// Every name, at once: acquired, contended, extended, released, twice.
	const rounds = 2
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, name := range names {
		wg.Go(func() {
			base := a.url + "/v1/locks/" + name
			for range rounds {
				r := post(t, base+"/acquire", `{"ttl":"30s","owner":"`+name+`"}`)
				var l leaseJSON
				if r.status != http.StatusOK {
					t.Errorf("acquire %s: %d %s", name, r.status, r.body)
					return
				}
				r.json(t, &l)
				if r := post(t, base+"/acquire", `{"owner":"rival"}`); r.status != http.StatusConflict {
					t.Errorf("second acquire %s: %d %s", name, r.status, r.body)
				}
				if r := post(t, base+"/extend", tokenBody(l.Token)); r.status != http.StatusOK {
					t.Errorf("extend %s: %d %s", name, r.status, r.body)
				}
				if r := post(t, base+"/release", tokenBody(l.Token)); r.status != http.StatusNoContent {
					t.Errorf("release %s: %d %s", name, r.status, r.body)
				}
			}
		})
	}
	total := len(names) * rounds * 4

	// Half-way, the client leaves for the other replica while the locks
	// keep changing.
	var got []sseEvent
	for range total / 2 {
		got = append(got, first.next(names...))
	}
	first.stop()
	rest := resume(t, b, got[len(got)-1].id)
	for len(got) < total {
		got = append(got, rest.next(names...))
	}
	wg.Wait()

	// What the client got is each shard's stream, in its order, exactly.
	want := map[string][]lock.EventID{}
	for _, tag := range shards {
		msgs, err := rdb.XRange(ctx, "lockd:events:{"+tag+"}", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			want[tag] = append(want[tag], parseStreamID(msg.ID))
		}
	}
	sent := map[string][]lock.EventID{}
	prev := from
	for _, ev := range got {
		se := advanced(t, a.locks, prev, ev.id)
		sent[se.shard] = append(sent[se.shard], se.id)
		if ev.data.ID != ev.id {
			t.Errorf("event %s: data id %s", ev.id, ev.data.ID)
		}
		prev = ev.id
	}
	for _, tag := range shards {
		if !slices.Equal(sent[tag], want[tag]) || len(want[tag]) == 0 {
			t.Errorf("shard %s: the client got\n%v\nthe stream holds\n%v", tag, sent[tag], want[tag])
		}
	}
	rest.none(200 * time.Millisecond)
	checkLockOrder(t, got, names, rounds)

	// A client that stayed on the first replica got the same, live.
	var along []sseEvent
	for range total {
		along = append(along, live.next(names...))
	}
	checkLockOrder(t, along, names, rounds)

	// Each id has the documented form.
	pattern := lastEventIDPattern(t)
	for _, ev := range slices.Concat(got, along) {
		if !pattern.MatchString(ev.id) {
			t.Fatalf("id %q does not match the documented %s", ev.id, pattern)
		}
	}

	// A position naming no current shard reads every stream from the
	// start (its newest entry is older than positionSlack).
	unknown := resume(t, b, "zzz.1-0")
	for range total {
		unknown.next(names...)
	}

	var tooMany []string
	for i := range 1001 {
		tooMany = append(tooMany, strconv.FormatInt(int64(i), 36)+".1-0")
	}
	for _, bad := range []string{
		"not-an-id", "1700000000000-0", from + "~", shards[0] + ".1-0~" + shards[0] + ".2-0",
		"abcd.1-0", "a.1-x", "a_.1-0", ".1-0", "a.1-0.2", strings.Join(tooMany, "~"),
	} {
		r := callWith(t, ctx, http.MethodGet, b.url+"/v1/events", "", http.Header{"Last-Event-ID": {bad}})
		if r.status != http.StatusBadRequest || r.errorCode() != "invalid_argument" {
			t.Errorf("Last-Event-ID %.40q: %d %s", bad, r.status, r.body)
		}
	}
}

// checkLockOrder fails the test unless evs hold, for each name, its
// events in the order TestEventsAcrossShards made them, with fences that
// rise from one grant to the next.
func checkLockOrder(t *testing.T, evs []sseEvent, names []string, rounds int) {
	t.Helper()
	var want []string
	for range rounds {
		want = append(want, evAcquired, evContended, evExtended, evReleased)
	}
	byName := map[string][]sseEvent{}
	for _, ev := range evs {
		byName[ev.data.Name] = append(byName[ev.data.Name], ev)
	}
	for _, name := range names {
		var types []string
		var fence int64
		for i, ev := range byName[name] {
			types = append(types, ev.typ)
			if ev.typ != ev.data.Type {
				t.Errorf("%s: event type %s, data type %s", name, ev.typ, ev.data.Type)
			}
			if ev.typ == evAcquired {
				if ev.data.Fence <= fence {
					t.Errorf("%s: event %d has fence %d after %d", name, i, ev.data.Fence, fence)
				}
				fence = ev.data.Fence
			}
		}
		if !slices.Equal(types, want) {
			t.Errorf("%s: events %q, want %q", name, types, want)
		}
	}
}

// lastEventIDPattern is the form doc/openapi.yaml gives Last-Event-ID,
// which every event id must have, or a client could not send it back.
func lastEventIDPattern(t *testing.T) *regexp.Regexp {
	t.Helper()
	root, err := redistest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromFile(filepath.Join(root, apitest.SpecPath))
	if err != nil {
		t.Fatal(err)
	}
	p := doc.Paths.Find("/v1/events").Get.Parameters.GetByInAndName("header", "Last-Event-ID")
	if p == nil {
		t.Fatal("openapi.yaml documents no Last-Event-ID")
	}
	return regexp.MustCompile(p.Schema.Value.Pattern)
}

// TestEventsIDsJoinTheClientsPosition resumes with positions that the
// replica's reader never had: made by a reader that took the shards in
// another order, or that is ahead on a shard. The ids the client then
// gets still cover what it has, so a later resume repeats nothing.
func TestEventsIDsJoinTheClientsPosition(t *testing.T) {
	t.Parallel()
	a, b, rdb, shards := startShardedPair(t)
	s0, s1, s2 := shards[0], shards[1], shards[2]
	pos := func(id0, id1, id2 string) string {
		return s0 + "." + id0 + "~" + s1 + "." + id1 + "~" + s2 + "." + id2
	}

	// One client keeps b's readers and ring, and shows the order in which
	// b read the events: each is published once b has the one before.
	along := resume(t, b, "")
	publish := func(shard string) string {
		t.Helper()
		id, err := rdb.XAdd(context.Background(), &redis.XAddArgs{
			Stream: "lockd:events:{" + shard + "}", Values: []any{"data", acquiredEvent("mixed")},
		}).Result()
		if err != nil {
			t.Fatal(err)
		}
		if ev := along.next("mixed"); !strings.Contains(ev.id, shard+"."+id) {
			t.Fatalf("b read %s, want %s.%s", ev.id, shard, id)
		}
		return id
	}
	a0, b0, a1 := publish(s0), publish(s1), publish(s0)

	// b read a0 before b0; this client has b0 but not a0 (its reader took
	// s1 first). From b's ring, a0's id names b0 too.
	mixed := resume(t, b, pos("0-0", b0, "0-0"))
	for _, want := range []string{pos(a0, b0, "0-0"), pos(a1, b0, "0-0")} {
		if ev := mixed.next("mixed"); ev.id != want {
			t.Fatalf("got %s, want %s", ev.id, want)
		}
	}
	// Resumed after the first on the other replica: only a1.
	again := resume(t, a, pos(a0, b0, "0-0"))
	if ev := again.next("mixed"); ev.id != pos(a1, b0, "0-0") {
		t.Fatalf("got %s, want %s", ev.id, pos(a1, b0, "0-0"))
	}

	for _, s := range []*resumer{mixed, again} {
		s.none(100 * time.Millisecond)
		s.stop()
	}

	// Ahead of b on s2 (a replica whose reader is further on), live: the
	// ids keep the client's s2.
	ahead := fmt.Sprintf("%d-0", time.Now().Add(time.Minute).UnixMilli())
	live := resume(t, b, pos(a1, b0, ahead))
	a2 := publish(s0)
	if ev := live.next("mixed"); ev.id != pos(a2, b0, ahead) {
		t.Fatalf("got %s, want %s", ev.id, pos(a2, b0, ahead))
	}
}
