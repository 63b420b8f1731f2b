package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// StreamEvent is one entry of EventsStream: its id and the data a replica
// published, unchanged.
type StreamEvent struct {
	ID   string
	Data []byte
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

// LastEventID is the id of EventsStream's newest entry, or "0-0" when it is
// empty: where a reader that wants only new events starts. ("$" would not
// do for a loop of XREADs: entries added between two reads would be
// missed.) It returns ErrUnavailable.
func (m *Manager) LastEventID(ctx context.Context) (string, error) {
	n := m.listNode()
	if n == nil {
		return "", &kindError{ErrUnavailable, errNodeOut}
	}
	ctx, cancel := context.WithTimeout(ctx, eventsTimeout)
	defer cancel()
	msgs, err := n.client.XRevRangeN(ctx, EventsStream, "+", "-", 1).Result()
	if err != nil {
		return "", &kindError{ErrUnavailable, fmt.Errorf("lock: read events: %w", err)}
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
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

// Less reports whether a comes before b in the stream.
func (a EventID) Less(b EventID) bool {
	return a.MS < b.MS || a.MS == b.MS && a.Seq < b.Seq
}

// ValidEventID reports whether id has the form of a stream id, "ms-seq".
func ValidEventID(id string) bool {
	_, ok := ParseEventID(id)
	return ok
}

// ReadEvents returns up to count entries of EventsStream after lastID,
// oldest first, waiting up to block for the first one (block < 0: not at
// all). It returns no entries and no error when none came in time, and
// ErrInvalidArgument or ErrUnavailable. It reads over its own connections,
// so a blocked read never delays a lock call.
func (m *Manager) ReadEvents(ctx context.Context, lastID string, count int, block time.Duration) ([]StreamEvent, error) {
	if !ValidEventID(lastID) {
		return nil, invalid("event id %q is not a stream id such as 1700000000000-0", lastID)
	}
	n := m.listNode()
	if n == nil {
		return nil, &kindError{ErrUnavailable, errNodeOut}
	}
	args := &redis.XReadArgs{Streams: []string{EventsStream, lastID}, Count: int64(count), Block: -1}
	if block >= 0 {
		args.Block = max(block, time.Millisecond) // BLOCK 0 would wait forever
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, eventsTimeout)
		defer cancel()
	}
	streams, err := n.events.XRead(ctx, args).Result()
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
		for _, msg := range s.Messages {
			out = append(out, StreamEvent{ID: msg.ID, Data: EntryData(msg)})
		}
	}
	return out, nil
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
