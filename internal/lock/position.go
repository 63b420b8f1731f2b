package lock

import (
	"iter"
	"slices"
	"strings"
	"time"
)

// A Position is how far a reader of the events has read: for each events
// stream, the id of the last entry it has, and so every entry up to it.
// Outside cluster mode there is one stream, EventsStream, named by the
// tag "", and a Position is written as that stream's id, "ms-seq". In a
// cluster each shard has a stream of its own, named by the shard's tag
// (shardEventsKey), and a Position is written "TAG.ms-seq~TAG.ms-seq…",
// one part per shard, in the order of the tags: tags are 1 to 3 of
// [0-9a-zA-Z], so neither '.' nor '~' can be part of one, and the whole is
// safe in a header and in a URL.
//
// Being per shard, a Position means the same on every replica, however
// its reader interleaved the shards: resuming after it loses and repeats
// nothing. A shard it does not name (a new master, or a master whose
// home slot moved) counts as read up to positionSlack before the newest
// entry it names (Fill).
//
// A Position is a value: its methods return new Positions and never
// change the one they are called on.
type Position struct {
	at []shardAt // sorted by tag, each tag once
}

type shardAt struct {
	tag string
	id  EventID
}

// positionSlack is how far before a Position's newest entry a shard it
// does not name is read from (Fill). A shard's stream that is new to the
// reader got its first entries at most a few seconds before every replica
// follows it (clusterEvery, plus a streamBlock, plus the shards' clock
// differences), so nothing is lost; a stream that held entries long
// before (a home tag that comes back after a reshard) is not replayed in
// full.
const positionSlack = 10 * time.Second

// maxPositionShards bounds the shards a parsed Position may name: Redis
// Cluster supports up to 1000 nodes. It keeps what a client can make a
// replica parse, and repeat in each event's id, small.
const maxPositionShards = 1000

// Get returns the id of shard tag's last entry read, and whether p names
// the shard.
func (p Position) Get(tag string) (EventID, bool) {
	i, ok := p.find(tag)
	if !ok {
		return EventID{}, false
	}
	return p.at[i].id, true
}

func (p Position) find(tag string) (int, bool) {
	return slices.BinarySearchFunc(p.at, tag, func(a shardAt, tag string) int { return strings.Compare(a.tag, tag) })
}

// Len is how many shards p names.
func (p Position) Len() int { return len(p.at) }

// All yields each shard p names, and its id, in the order of the tags.
func (p Position) All() iter.Seq2[string, EventID] {
	return func(yield func(string, EventID) bool) {
		for _, a := range p.at {
			if !yield(a.tag, a.id) {
				return
			}
		}
	}
}

// Tags are the shards p names, in order.
func (p Position) Tags() []string {
	tags := make([]string, len(p.at))
	for i, a := range p.at {
		tags[i] = a.tag
	}
	return tags
}

// With returns p with shard tag read up to id.
func (p Position) With(tag string, id EventID) Position {
	i, ok := p.find(tag)
	if ok {
		at := slices.Clone(p.at)
		at[i].id = id
		return Position{at}
	}
	at := make([]shardAt, 0, len(p.at)+1)
	at = append(append(append(at, p.at[:i]...), shardAt{tag, id}), p.at[i:]...)
	return Position{at}
}

// Without returns p without shard tag.
func (p Position) Without(tag string) Position {
	i, ok := p.find(tag)
	if !ok {
		return p
	}
	return Position{slices.Delete(slices.Clone(p.at), i, i+1)}
}

// Fill returns p naming every shard of tags: one p does not name counts
// as read up to positionSlack before the newest entry p names (from the
// start of its stream when p names no entry that late).
func (p Position) Fill(tags []string) Position {
	var newest uint64
	for _, a := range p.at {
		newest = max(newest, a.id.MS)
	}
	floor := EventID{MS: newest - min(newest, uint64(positionSlack.Milliseconds()))}
	for _, tag := range tags {
		if _, ok := p.find(tag); !ok {
			p = p.With(tag, floor)
		}
	}
	return p
}

// Beyond returns the shards of p that q does not name, or names at an
// earlier entry: what p has that q does not say.
func (p Position) Beyond(q Position) Position {
	var at []shardAt
	for _, a := range p.at {
		if id, ok := q.Get(a.tag); !ok || id.Less(a.id) {
			at = append(at, a)
		}
	}
	return Position{at}
}

// Join returns the later entry of p and q for each shard either names.
func (p Position) Join(q Position) Position {
	for tag, id := range q.All() {
		if mine, ok := p.Get(tag); !ok || mine.Less(id) {
			p = p.With(tag, id)
		}
	}
	return p
}

// String writes p as ParsePosition reads it: "ms-seq" for the one stream
// outside cluster mode, "TAG.ms-seq~TAG.ms-seq…" in a cluster.
func (p Position) String() string {
	if len(p.at) == 1 && p.at[0].tag == "" {
		return p.at[0].id.String()
	}
	var b strings.Builder
	for i, a := range p.at {
		if i > 0 {
			b.WriteByte('~')
		}
		b.WriteString(a.tag)
		b.WriteByte('.')
		b.WriteString(a.id.String())
	}
	return b.String()
}

// ParsePosition reads a Position as String writes it in this Manager's
// mode: a stream id outside cluster mode, shard tags and ids in a
// cluster. Any well-formed tag is accepted, also one of a shard that is
// gone. It returns ErrInvalidArgument.
func (m *Manager) ParsePosition(s string) (Position, error) {
	var p Position
	if m.cluster == nil {
		id, ok := ParseEventID(s)
		if !ok {
			return Position{}, invalid("event id %q is not a stream id such as 1700000000000-0", quoteEnd(s))
		}
		p = Position{[]shardAt{{"", id}}}
	} else {
		var ok bool
		if p, ok = parseShards(s); !ok {
			return Position{}, invalid("event id %q is not a position such as 0.1700000000000-0~5.1700000000000-3", quoteEnd(s))
		}
	}
	// A stream id is Redis's clock in ms when the event was written. One
	// far ahead of now was never sent: resuming after it would wait,
	// silently, until the clock gets there.
	limit := uint64(time.Now().Add(maxIDAhead).UnixMilli())
	for _, at := range p.at {
		if at.id.MS > limit {
			return Position{}, invalid("event id %q is ahead of every event this service has written; start again without Last-Event-ID", quoteEnd(s))
		}
	}
	return p, nil
}

// maxIDAhead is how far ahead of lockd's clock a resumed event id may be:
// Redis's clock, which stamps the ids, may run ahead of lockd's, but not
// by an hour.
const maxIDAhead = time.Hour

// parseShards reads "TAG.ms-seq~TAG.ms-seq…", each tag at most once.
func parseShards(s string) (Position, bool) {
	if strings.Count(s, "~") >= maxPositionShards {
		return Position{}, false
	}
	var at []shardAt
	for part := range strings.SplitSeq(s, "~") {
		tag, rest, ok := strings.Cut(part, ".")
		id, valid := ParseEventID(rest)
		if !ok || !valid || !validTag(tag) {
			return Position{}, false
		}
		at = append(at, shardAt{tag, id})
	}
	slices.SortFunc(at, func(a, b shardAt) int { return strings.Compare(a.tag, b.tag) })
	for i := 1; i < len(at); i++ {
		if at[i].tag == at[i-1].tag {
			return Position{}, false
		}
	}
	return Position{at}, true
}

// validTag reports whether tag could be a shard's: 1 to 3 characters of
// tagAlphabet (slotTag).
func validTag(tag string) bool {
	if len(tag) == 0 || len(tag) > 3 {
		return false
	}
	for i := range len(tag) {
		if !strings.ContainsRune(tagAlphabet, rune(tag[i])) {
			return false
		}
	}
	return true
}

// quoteEnd shortens what a caller sent to a length fit for a message.
func quoteEnd(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
