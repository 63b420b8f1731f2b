package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// Hub settings: how many of the newest events a replica keeps for clients
// that reconnect, and how many entries one read takes. A live read must
// fit in a client's buffer (streamBuffer), or a client that is keeping up
// would be dropped by one busy read; a catch-up read is written straight
// to its client, so it can be larger.
const (
	streamRing     = 1000
	streamLiveRead = 100
	streamPage     = 500
)

// eventHub is a replica's one reader of the events streams: a single XREAD
// BLOCK loop per stream fans every event out to all of the replica's
// /v1/events clients. Giving each client its own blocked XREAD, as lockd
// once did, let 150 idle dashboards empty the events connection pool;
// now any number of clients hold one blocked connection per stream (one
// stream outside cluster mode, one per shard in a cluster), plus one for
// catch-up reads, which take turns.
//
// In a cluster the shards' streams are read side by side, and an event's
// id is the hub's lock.Position after it: per shard, the last entry read.
// The shards followed are the cluster's masters, checked again after each
// read (so at least every streamBlock): a new master's stream is read
// from where Position.Fill says, and a stream no master is at home in any
// more is left.
//
// The readers start with the first client and stop once none is left,
// which they see when their XREAD returns (within streamBlock). The
// handler has no life of its own to tie them to (NewHandler returns an
// http.Handler, and cmd/lockd owns shutdown); this way an idle replica
// holds no blocked connection at all, draining ends the readers with the
// streams, and a client that reconnects at once finds them still running.
// The readers also stop, ending every stream, when Redis cannot be read;
// the next client starts them again, or is answered 503.
type eventHub struct {
	locks *lock.Manager
	log   *slog.Logger
	pages sync.Mutex // one catch-up read at a time

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	// readers holds, while the hub runs, the number of the reader of each
	// shard's stream followed: a reader whose number is no longer there
	// stops. It is empty when the hub does not run.
	readers    map[string]int
	lastReader int
	// ring is the newest events read, oldest first, of the shards
	// followed: of each shard s, every entry after base[s], up to pos[s],
	// the last one read. Entries trimmed before the reader got to them are
	// missing here as in the stream.
	ring []*ringEvent
	base lock.Position
	pos  lock.Position
}

// ringEvent is an event as the hub keeps it: its shard and id, to find
// where a client resumes; the hub's position after it, its SSE id; and
// its frame, made once for all clients.
type ringEvent struct {
	shard string
	id    lock.EventID
	pos   lock.Position
	data  []byte
	frame []byte
}

// subscriber is one client of the hub. Until it is live (see attach) it
// only keeps the readers running while it catches up from the streams.
type subscriber struct {
	events chan *ringEvent // closed when the hub ends the stream
	live   bool
	after  lock.Position // the client has every event up to here
	cut    func()        // unblocks a write to a client that is dropped
}

func newEventHub(locks *lock.Manager, log *slog.Logger) *eventHub {
	return &eventHub{locks: locks, log: log, subs: map[*subscriber]struct{}{}, readers: map[string]int{}}
}

// subscribe adds a client that is not live yet, starting the readers from
// the newest events when they are not running. cut is called, under the
// hub's lock, when the client is dropped for being too slow. It returns
// LastEventPosition's errors when the readers cannot start.
func (h *eventHub) subscribe(ctx context.Context, cut func()) (*subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.readers) == 0 {
		last, err := h.locks.LastEventPosition(ctx)
		if err != nil {
			return nil, err
		}
		// The ring of earlier readers is not kept: what was added to the
		// streams while none ran would be missing from it.
		h.base, h.pos, h.ring = last, last, nil
		for tag, id := range last.All() {
			h.startReader(tag, id)
		}
	}
	sub := &subscriber{events: make(chan *ringEvent, streamBuffer), cut: cut}
	h.subs[sub] = struct{}{}
	return sub, nil
}

// attach makes sub live once it has every event up to after (no shards:
// live from now). It returns the ring's events after that point, which
// the client must be sent before sub.events; no event is in both, and
// none is left out. It also returns the client's position, which the ids
// of its events must carry on (see carryOn). It returns false, leaving
// sub as it was, when after is older than the ring for some shard and the
// client must catch up from the streams first, unless force (the streams
// have nothing after it: what the ring holds before is gone from them
// too). When the hub has already ended sub, it returns true and
// sub.events is closed.
func (h *eventHub) attach(sub *subscriber, after lock.Position, force bool) ([]*ringEvent, lock.Position, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; !ok {
		return nil, lock.Position{}, true
	}
	from, carry := h.pos, lock.Position{} // live from now: the hub's ids fit
	if after.Len() > 0 {
		from = after.Fill(h.pos.Tags())
		carry = from
	}
	if !force {
		for tag, base := range h.base.All() {
			if at, _ := from.Get(tag); at.Less(base) {
				return nil, lock.Position{}, false
			}
		}
	}
	var backlog []*ringEvent
	for _, ev := range h.ring {
		if at, _ := from.Get(ev.shard); at.Less(ev.id) {
			backlog = append(backlog, ev)
		}
	}
	// after may be ahead of the readers (a client coming from a replica
	// whose reader is further on): events up to it are then skipped.
	sub.live, sub.after = true, from
	return backlog, carry, true
}

// carryOn returns the frame to send a client for ev, and what the client
// has beyond ev's id. An event's id is the hub's position after it, which
// may lag the client's on another shard: the client caught up from the
// streams in another order, or came from a replica whose reader is
// further on, or reads shards this one does not follow. Its ids then
// join its own position (carry, from attach) to the hub's, so that its
// next resume repeats nothing. Once an event's position covers the
// client's, every later one does too, and the frame made once for all
// clients fits.
func carryOn(ev *ringEvent, carry lock.Position) ([]byte, lock.Position) {
	if carry.Len() > 0 {
		carry = carry.Beyond(ev.pos)
	}
	if carry.Len() == 0 {
		return ev.frame, carry
	}
	return sseFrame(ev.pos.Join(carry).String(), ev.data), carry
}

// page is one catch-up read: the streams' entries after last, in the
// order of their ids, none when there are no more. Catch-up reads take
// turns, so all of them need one connection per shard.
func (h *eventHub) page(ctx context.Context, last lock.Position) ([]lock.StreamEvent, error) {
	h.pages.Lock()
	defer h.pages.Unlock()
	return h.locks.EventsAfter(ctx, last, streamPage)
}

// leave removes sub; after it returns, the hub no longer touches sub's
// client (sub.cut is not called).
func (h *eventHub) leave(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, sub)
}

// startReader starts a reader of shard's stream after id. h.mu is held.
func (h *eventHub) startReader(shard string, id lock.EventID) {
	h.lastReader++
	h.readers[shard] = h.lastReader
	go h.read(shard, h.lastReader, id)
}

// read is a reader: it reads shard's stream after last until no client
// is left, Redis fails, or the shard is no longer followed.
func (h *eventHub) read(shard string, n int, last lock.EventID) {
	for {
		// No request's context ends this read: the reader stops on its
		// own, at most streamBlock after its last client left (or when the
		// Manager is closed).
		evs, err := h.locks.ReadEvents(context.Background(), shard, last, streamLiveRead, streamBlock)
		h.mu.Lock()
		if h.readers[shard] != n {
			// The hub stopped, or left the shard, meanwhile.
			h.mu.Unlock()
			return
		}
		if err != nil && len(h.subs) > 0 {
			h.log.Warn("event streams ended: Redis read failed", "streams", len(h.subs), "err", err)
			for sub := range h.subs {
				h.end(sub)
			}
		}
		for _, ev := range evs {
			h.send(ev)
		}
		stop := err != nil || len(h.subs) == 0
		if stop {
			clear(h.readers)
		} else {
			h.follow()
		}
		h.mu.Unlock()
		if stop {
			return
		}
		if len(evs) > 0 {
			last = evs[len(evs)-1].ID
		}
	}
}

// follow starts reading the stream of each shard the Manager knows and
// the hub does not follow yet, and leaves each stream followed no more
// (its events leave the ring too). h.mu is held.
func (h *eventHub) follow() {
	tags := h.locks.EventShards()
	if len(tags) == 0 {
		return // the slots could not be read: keep what is followed
	}
	for shard := range h.readers {
		if !slices.Contains(tags, shard) {
			delete(h.readers, shard)
			h.base, h.pos = h.base.Without(shard), h.pos.Without(shard)
			h.ring = slices.DeleteFunc(h.ring, func(ev *ringEvent) bool { return ev.shard == shard })
		}
	}
	for _, shard := range tags {
		if _, ok := h.readers[shard]; !ok {
			h.pos = h.pos.Fill([]string{shard})
			start, _ := h.pos.Get(shard)
			h.base = h.base.With(shard, start)
			h.startReader(shard, start)
		}
	}
}

// send adds ev to the ring and queues it for every live client that does
// not have it. A client whose buffer is full is dropped rather than let
// it hold anything up: it reconnects with Last-Event-ID. h.mu is held.
func (h *eventHub) send(ev lock.StreamEvent) {
	h.pos = h.pos.With(ev.Shard, ev.ID)
	re := &ringEvent{shard: ev.Shard, id: ev.ID, pos: h.pos, data: ev.Data}
	re.frame = sseFrame(h.pos.String(), ev.Data)
	if len(h.ring) == streamRing {
		h.base, h.ring = h.base.With(h.ring[0].shard, h.ring[0].id), h.ring[1:]
	}
	h.ring = append(h.ring, re)
	for sub := range h.subs {
		if !sub.live {
			continue
		}
		if at, ok := sub.after.Get(ev.Shard); ok && !at.Less(ev.ID) {
			continue
		}
		select {
		case sub.events <- re:
		default:
			h.log.Warn("event stream dropped a consumer that could not keep up")
			sub.cut()
			h.end(sub)
		}
	}
}

// end removes sub and closes its events: its stream ends after the events
// queued, unless it was cut off. h.mu is held.
func (h *eventHub) end(sub *subscriber) {
	delete(h.subs, sub)
	close(sub.events)
}

// sseWriter writes one stream, each write bounded by streamWriteTimeout.
type sseWriter struct {
	w  io.Writer
	rc *http.ResponseController

	mu     sync.Mutex
	cutOff bool
}

// write sends b at once, and reports whether it could.
func (w *sseWriter) write(b []byte) bool {
	w.mu.Lock()
	if w.cutOff {
		w.mu.Unlock()
		return false
	}
	_ = w.rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	w.mu.Unlock()
	if _, err := w.w.Write(b); err != nil {
		return false
	}
	return w.rc.Flush() == nil
}

// cut fails the write in progress, which may be stuck on a client that
// reads too slowly, and every later one.
func (w *sseWriter) cut() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cutOff = true
	_ = w.rc.SetWriteDeadline(time.Now())
}
