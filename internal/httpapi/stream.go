package httpapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sort"
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

// eventHub is a replica's one reader of the events stream: a single XREAD
// BLOCK loop fans every event out to all of the replica's /v1/events
// clients. Giving each client its own blocked XREAD, as lockd once did,
// let 150 idle dashboards empty the events connection pool; now any
// number of clients hold one blocked connection, plus one for catch-up
// reads, which take turns.
//
// The reader starts with the first client and stops once none is left,
// which it sees when its XREAD returns (within streamBlock). The handler
// has no life of its own to tie it to (NewHandler returns an
// http.Handler, and cmd/lockd owns shutdown); this way an idle replica
// holds no blocked connection at all, draining ends the reader with the
// streams, and a client that reconnects at once finds it still running.
// The reader also stops, ending every stream, when Redis cannot be read;
// the next client starts it again, or is answered 503.
type eventHub struct {
	locks *lock.Manager
	log   *slog.Logger
	pages sync.Mutex // one catch-up read at a time

	mu      sync.Mutex
	running bool
	subs    map[*subscriber]struct{}
	// ring is the newest events read, oldest first: every stream entry
	// after base, up to pos, the id of the last one read. Entries trimmed
	// before the reader got to them are missing here as in the stream.
	ring []ringEvent
	base lock.EventID
	pos  lock.EventID
}

// ringEvent is an event as the hub keeps it: its id, to find where a
// client resumes, and its frame, made once for all clients.
type ringEvent struct {
	id    lock.EventID
	frame []byte
}

// subscriber is one client of the hub. Until it is live (see attach) it
// only keeps the reader running while it catches up from the stream.
type subscriber struct {
	frames chan []byte // closed when the hub ends the stream
	live   bool
	after  lock.EventID // the client has every event up to here
	cut    func()       // unblocks a write to a client that is dropped
}

func newEventHub(locks *lock.Manager, log *slog.Logger) *eventHub {
	return &eventHub{locks: locks, log: log, subs: map[*subscriber]struct{}{}}
}

// subscribe adds a client that is not live yet, starting the reader from
// the newest event when it is not running. cut is called, under the
// hub's lock, when the client is dropped for being too slow. It returns
// LastEventID's errors when the reader cannot start.
func (h *eventHub) subscribe(ctx context.Context, cut func()) (*subscriber, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running {
		last, err := h.locks.LastEventID(ctx)
		if err != nil {
			return nil, err
		}
		// The ring of an earlier reader is not kept: what was added to the
		// stream while no reader ran would be missing from it.
		h.base, h.pos, h.ring = parseStreamID(last), parseStreamID(last), nil
		h.running = true
		go h.read(last)
	}
	sub := &subscriber{frames: make(chan []byte, streamBuffer), cut: cut}
	h.subs[sub] = struct{}{}
	return sub, nil
}

// attach makes sub live once it has every event up to after ("": live
// from now). It returns the ring's frames after that point, which the
// client must be sent before sub.frames; no event is in both, and none
// is left out. It returns false, leaving sub as it was, when after is
// older than the ring and the client must catch up from the stream
// first, unless force (the stream has nothing after it: what the ring
// holds before is gone from the stream too). When the hub has already
// ended sub, it returns true and sub.frames is closed.
func (h *eventHub) attach(sub *subscriber, after string, force bool) ([][]byte, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; !ok {
		return nil, true
	}
	from := h.pos
	if after != "" {
		from = parseStreamID(after)
	}
	if from.Less(h.base) && !force {
		return nil, false
	}
	i := sort.Search(len(h.ring), func(i int) bool { return from.Less(h.ring[i].id) })
	backlog := make([][]byte, 0, len(h.ring)-i)
	for _, ev := range h.ring[i:] {
		backlog = append(backlog, ev.frame)
	}
	// after may be ahead of the reader (a client coming from a replica
	// whose reader is further on): events up to it are then skipped.
	sub.live, sub.after = true, from
	return backlog, true
}

// page is one catch-up read: the stream's entries after last, oldest
// first, none when there are no more. Catch-up reads take turns, so all
// of them need one connection.
func (h *eventHub) page(ctx context.Context, last string) ([]lock.StreamEvent, error) {
	h.pages.Lock()
	defer h.pages.Unlock()
	return h.locks.ReadEvents(ctx, last, streamPage, -1)
}

// leave removes sub; after it returns, the hub no longer touches sub's
// client (sub.cut is not called).
func (h *eventHub) leave(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, sub)
}

// read is the reader: it reads the stream after last until no client is
// left or Redis fails.
func (h *eventHub) read(last string) {
	for {
		// No context ends this read: the reader stops on its own, at most
		// streamBlock after its last client left.
		evs, err := h.locks.ReadEvents(context.Background(), last, streamLiveRead, streamBlock)
		h.mu.Lock()
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
			h.running = false
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

// send adds ev to the ring and queues it for every live client that does
// not have it. A client whose buffer is full is dropped rather than let
// it hold anything up: it reconnects with Last-Event-ID. h.mu is held.
func (h *eventHub) send(ev lock.StreamEvent) {
	id, frame := parseStreamID(ev.ID), sseFrame(ev)
	if len(h.ring) == streamRing {
		h.base, h.ring = h.ring[0].id, h.ring[1:]
	}
	h.ring = append(h.ring, ringEvent{id: id, frame: frame})
	h.pos = id
	for sub := range h.subs {
		if !sub.live || !sub.after.Less(id) {
			continue
		}
		select {
		case sub.frames <- frame:
		default:
			h.log.Warn("event stream dropped a consumer that could not keep up")
			sub.cut()
			h.end(sub)
		}
	}
}

// end removes sub and closes its frames: its stream ends after the frames
// queued, unless it was cut off. h.mu is held.
func (h *eventHub) end(sub *subscriber) {
	delete(h.subs, sub)
	close(sub.frames)
}

// parseStreamID reads an id that lock.ValidEventID accepted, or that Redis
// gave.
func parseStreamID(s string) lock.EventID {
	id, _ := lock.ParseEventID(s)
	return id
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
