package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventsStream is the Redis stream every replica appends its lock events
// to. Its ids are shared by all replicas, which gives each lock's events one
// order, and let a reader resume where it left off.
const EventsStream = "lockd:events"

// eventsMaxLen caps EventsStream. MAXLEN ~ lets Redis trim whole macro
// nodes, which is much cheaper than an exact cap, so a little more may be
// kept.
const eventsMaxLen = 10000

// eventsTimeout bounds one XADD or non-blocking read: events are best
// effort and must not hold a request up for long.
const eventsTimeout = 500 * time.Millisecond

// Event types, as the events stream and /v1/events name them.
const (
	EventAcquired  = "acquired"
	EventExtended  = "extended"
	EventReleased  = "released"
	EventExpired   = "expired"
	EventContended = "contended" // an acquire refused: a /v1 409, or the demo's 500
	EventLost      = "lost"      // the holder found its lease gone (an extend or release refused)
	EventQueued    = "queued"    // a waiter took a place in a name's fair queue
)

// Event is one lock event, as /v1/events sends it (JSON). The demo's are
// stored so, in an entry's "data" field; the /v1 scripts store theirs
// compact (see EntryData). It never carries a token: Commands have them
// replaced by "…".
type Event struct {
	Type     string   `json:"type"`
	Replica  string   `json:"replica"`
	Name     string   `json:"name"`
	Fence    int64    `json:"fence"`
	Owner    string   `json:"owner"`
	TTLMS    int64    `json:"ttl_ms"`
	Time     string   `json:"time"`
	Source   string   `json:"source"` // "v1" or "demo"
	Commands []string `json:"commands,omitempty"`
}

// StreamEvent is one entry of an events stream: the tag of its shard
// ("" outside cluster mode, see Position), its id, and the data a replica
// published, unchanged.
type StreamEvent struct {
	Shard string
	ID    EventID
	Data  []byte
}

// PublishEvent appends data, an event of the lock named name, to
// EventsStream on every usable node (in quorum mode each node keeps its own
// stream, so no node is special) and returns the entry's id on the first of
// them; in cluster mode, to the stream of the shard that serves name. The /v1 operations write
// their events inside their scripts; this is for the demo's. It is never
// recorded in a CommandLog: it is lockd's bookkeeping, not the demo's
// trace. It returns ErrUnavailable when no node took it.
func (m *Manager) PublishEvent(ctx context.Context, name string, data []byte) (string, error) {
	ctx = context.WithValue(ctx, commandLogKey{}, (*CommandLog)(nil))
	stream := EventsStream
	if m.cluster != nil {
		sh := m.cluster.topo.Load().shardOf(KeyPrefix + name)
		if sh == nil {
			return "", unavailable("publish event", errNoTopology)
		}
		stream = shardEventsKey(sh.tag)
	}
	got, errs := fanOut(ctx, m, eventsTimeout, func(ctx context.Context, n *node) (string, error) {
		return n.client.XAdd(ctx, &redis.XAddArgs{
			Stream: stream, MaxLen: eventsMaxLen, Approx: true, Values: []any{"data", data},
		}).Result()
	})
	if len(got) == 0 {
		return "", unavailable("publish event", errs)
	}
	slices.SortFunc(got, func(a, b reply[string]) int { return a.node - b.node })
	return got[0].val, nil
}

// eventsKey is the events stream of the shard tagged tag: EventsStream
// outside cluster mode (tag "").
func eventsKey(tag string) string {
	if tag == "" {
		return EventsStream
	}
	return shardEventsKey(tag)
}

// EventShards are the tags of the events streams to read, sorted: "" for
// EventsStream outside cluster mode, in a cluster each master's as this
// replica last read the slots (none before it has). The caller must not
// change the slice.
func (m *Manager) EventShards() []string {
	if m.cluster == nil {
		return []string{""}
	}
	if t := m.cluster.topo.Load(); t != nil {
		return t.tags
	}
	return nil
}

// eventsNode is the node whose events connections read the streams: the
// first usable one (in quorum mode each node has its own stream), or in
// cluster mode the one that stands for every shard. It returns
// ErrUnavailable.
func (m *Manager) eventsNode() (*node, error) {
	if m.cluster != nil && m.cluster.topo.Load() == nil {
		return nil, unavailable("read events", errNoTopology)
	}
	n := m.listNode()
	if n == nil {
		return nil, &kindError{ErrUnavailable, errNodeOut}
	}
	return n, nil
}

// LastEventPosition is where a reader that wants only new events starts:
// the id of each shard's newest entry, or 0-0 for an empty stream. ("$"
// would not do for a loop of XREADs: entries added between two reads
// would be missed.) It returns ErrUnavailable.
func (m *Manager) LastEventPosition(ctx context.Context) (Position, error) {
	n, err := m.eventsNode()
	if err != nil {
		return Position{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, eventsTimeout)
	defer cancel()
	tags := m.EventShards()
	cmds := make([]*redis.XMessageSliceCmd, len(tags))
	// One pipeline: a cluster client sends each shard its own part at once.
	_, _ = n.events.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, tag := range tags {
			cmds[i] = p.XRevRangeN(ctx, eventsKey(tag), "+", "-", 1)
		}
		return nil
	})
	var pos Position
	for i, cmd := range cmds {
		msgs, err := cmd.Result()
		if err != nil {
			return Position{}, &kindError{ErrUnavailable, fmt.Errorf("lock: read events: %w", err)}
		}
		var id EventID
		if len(msgs) > 0 {
			id, _ = ParseEventID(msgs[0].ID)
		}
		pos = pos.With(tags[i], id)
	}
	return pos, nil
}

// EventID is an id of EventsStream, "ms-seq", in a form that compares as
// Redis orders ids.
type EventID struct{ MS, Seq uint64 }

// ParseEventID reads a stream id; ok is false when id is not "ms-seq".
func ParseEventID(id string) (e EventID, ok bool) {
	ms, seq, ok := strings.Cut(id, "-")
	var err1, err2 error
	e.MS, err1 = strconv.ParseUint(ms, 10, 64)
	e.Seq, err2 = strconv.ParseUint(seq, 10, 64)
	return e, ok && err1 == nil && err2 == nil
}

// String writes id as Redis does, "ms-seq".
func (a EventID) String() string {
	return strconv.FormatUint(a.MS, 10) + "-" + strconv.FormatUint(a.Seq, 10)
}

// Less reports whether a comes before b in the stream.
func (a EventID) Less(b EventID) bool {
	return a.MS < b.MS || a.MS == b.MS && a.Seq < b.Seq
}

// ReadEvents returns up to count entries of shard's events stream (see
// EventShards) after after, oldest first, waiting up to block for the
// first one. It returns no entries and no error when none came in time,
// and ErrUnavailable or ctx's error (context.Canceled once the Manager is
// closed). It reads over its own connections, so a blocked read never
// delays a lock call.
func (m *Manager) ReadEvents(ctx context.Context, shard string, after EventID, count int, block time.Duration) ([]StreamEvent, error) {
	n, err := m.eventsNode()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(m.closed, cancel)()
	streams, err := n.events.XRead(ctx, &redis.XReadArgs{
		Streams: []string{eventsKey(shard), after.String()}, Count: int64(count),
		Block: max(block, time.Millisecond), // BLOCK 0 would wait forever
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: read events: %w", err)}
	}
	var out []StreamEvent
	for _, s := range streams {
		out = appendEntries(out, shard, s.Messages)
	}
	return out, nil
}

// EventsAfter returns up to count of the entries p does not cover, of
// every shard's stream (EventShards), without waiting: a catch-up read. A
// shard p does not name is read as Position.Fill says. The entries are
// in the order of their ids, so each shard's come in their stream's
// order; the caller's position after one is p.With(ev.Shard, ev.ID). When
// a shard has more than count left, the entries stop at its last one
// returned, so that a later one of another shard does not come first. It
// returns no entries when p covers every stream, and ErrUnavailable.
func (m *Manager) EventsAfter(ctx context.Context, p Position, count int) ([]StreamEvent, error) {
	n, err := m.eventsNode()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, eventsTimeout)
	defer cancel()
	tags := m.EventShards()
	p = p.Fill(tags)
	cmds := make([]*redis.XStreamSliceCmd, len(tags))
	_, _ = n.events.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for i, tag := range tags {
			after, _ := p.Get(tag)
			cmds[i] = pipe.XRead(ctx, &redis.XReadArgs{Streams: []string{eventsKey(tag), after.String()}, Count: int64(count), Block: -1})
		}
		return nil
	})
	var out []StreamEvent
	cut := EventID{math.MaxUint64, math.MaxUint64} // nothing after it is returned
	for i, cmd := range cmds {
		streams, err := cmd.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, &kindError{ErrUnavailable, fmt.Errorf("lock: read events: %w", err)}
		}
		for _, s := range streams {
			out = appendEntries(out, tags[i], s.Messages)
			if len(s.Messages) == count {
				if last := out[len(out)-1].ID; last.Less(cut) {
					cut = last
				}
			}
		}
	}
	// A prefix of the entries in id order holds a prefix of each shard's.
	slices.SortStableFunc(out, func(a, b StreamEvent) int {
		switch {
		case a.ID.Less(b.ID):
			return -1
		case b.ID.Less(a.ID):
			return 1
		}
		return strings.Compare(a.Shard, b.Shard)
	})
	end := 0
	for end < len(out) && end < count && !cut.Less(out[end].ID) {
		end++
	}
	return out[:end], nil
}

// appendEntries adds msgs, entries of shard's stream, to out.
func appendEntries(out []StreamEvent, shard string, msgs []redis.XMessage) []StreamEvent {
	for _, msg := range msgs {
		id, _ := ParseEventID(msg.ID)
		out = append(out, StreamEvent{Shard: shard, ID: id, Data: EntryData(msg)})
	}
	return out
}

// EntryData is an EventsStream entry as the JSON of its Event. A /v1
// script's entry is compact: "e" is "type fence ttl_ms", "n" the name, "r"
// the replica, "o" the owner, and the time is the entry id's (Redis's
// clock). Building the JSON here, for readers only, keeps it off every
// lock operation. The demo's entries, and those of earlier releases,
// hold the JSON in "data", returned as it is.
func EntryData(msg redis.XMessage) []byte {
	e, ok := msg.Values["e"].(string)
	if !ok {
		data, _ := msg.Values["data"].(string)
		return []byte(data)
	}
	ev := Event{Source: "v1"}
	typ, rest, _ := strings.Cut(e, " ")
	fence, ttl, _ := strings.Cut(rest, " ")
	ev.Type = typ
	ev.Fence, _ = strconv.ParseInt(fence, 10, 64)
	ev.TTLMS, _ = strconv.ParseInt(ttl, 10, 64)
	ev.Name, _ = msg.Values["n"].(string)
	ev.Replica, _ = msg.Values["r"].(string)
	ev.Owner, _ = msg.Values["o"].(string)
	if id, ok := ParseEventID(msg.ID); ok {
		ev.Time = time.UnixMilli(int64(id.MS)).UTC().Format(eventTime)
	}
	data, _ := json.Marshal(ev) // strings and numbers only: cannot fail
	return data
}
