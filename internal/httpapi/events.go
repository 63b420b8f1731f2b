package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// Event types, as /v1/events and doc/openapi.yaml name them.
const (
	evAcquired  = "acquired"
	evExtended  = "extended"
	evReleased  = "released"
	evExpired   = "expired"
	evContended = "contended" // a /v1 409 locked, or the demo's 500
	evLost      = "lost"      // the holder found its lease gone (demo, or a /v1 extend or release)
)

// eventJSON is one lock event. It never carries a token: Commands have them
// replaced by "…". ID is the stream id, added when the event is sent.
type eventJSON struct {
	ID       string   `json:"id,omitempty"`
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

// eventTime is RFC 3339 in UTC with milliseconds.
const eventTime = "2006-01-02T15:04:05.000Z07:00"

// emit publishes ev to the shared stream. It is best effort: a failure is
// logged, never answered. It runs before the handler answers, so a
// client's next call (on any replica) is published after this one, and
// each lock's events keep their real order.
func (s *server) emit(ctx context.Context, ev eventJSON) string {
	ev.Replica = s.opts.Replica
	ev.Time = time.Now().UTC().Format(eventTime)
	b, err := json.Marshal(ev)
	if err != nil {
		return ""
	}
	id, err := s.locks.PublishEvent(context.WithoutCancel(ctx), b)
	if err != nil {
		s.log.WarnContext(ctx, "lock event not published", "type", ev.Type, "err", err)
	}
	return id
}

// watchExpiry arms a timer at the end of a lease granted here. When it
// fires and the lock is free or held by another grant, and the stream shows
// no release or loss of this grant since sinceID, the lease expired: the
// granting replica says so. This was chosen over Redis keyspace
// notifications because those need CONFIG SET notify-keyspace-events (which
// lockd's ACL rule leaves out on purpose), are fire-and-forget (a replica
// that is reconnecting misses them) and would arrive on every replica at
// once. A replica that stops before the lease ends reports nothing.
func (s *server) watchExpiry(l lock.Lease, sinceID string) {
	if sinceID == "" {
		return // the acquire was not published; nobody expects the rest
	}
	key := l.Name + "\x00" + sinceID
	var check func()
	check = func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		h, held, err := s.locks.Inspect(ctx, l.Name)
		switch {
		case err != nil:
			s.expiries.forget(key)
			return
		case held && h.Fence == l.Fence:
			// Extended, maybe on another replica: look again when the key
			// would expire now.
			s.expiries.rearm(key, h.TTL+5*time.Millisecond)
			return
		}
		s.expiries.forget(key)
		if s.endedSince(ctx, sinceID, l.Name, l.Fence) {
			return
		}
		s.emit(ctx, eventJSON{Type: evExpired, Name: l.Name, Fence: l.Fence, Owner: l.Owner, Source: "v1"})
	}
	s.expiries.arm(key, max(time.Until(l.Until), 0), check)
}

// endedSince reports whether the stream holds, after sinceID, a release or
// loss of the grant (name, fence). When it cannot tell, it says yes: a
// missing "expired" is better than a false one.
func (s *server) endedSince(ctx context.Context, sinceID, name string, fence int64) bool {
	for last := sinceID; ; {
		evs, err := s.locks.ReadEvents(ctx, last, 500, -1)
		if err != nil {
			return true
		}
		if len(evs) == 0 {
			return false
		}
		for _, e := range evs {
			var ev eventJSON
			if json.Unmarshal(e.Data, &ev) == nil && ev.Name == name && ev.Fence == fence &&
				(ev.Type == evReleased || ev.Type == evLost || ev.Type == evExpired) {
				return true
			}
		}
		last = evs[len(evs)-1].ID
	}
}

// expiryTimers are this replica's armed expiry checks, one per lock name,
// so that a release here can disarm its own at once. time.AfterFunc holds
// no goroutine until a check is due.
type expiryTimers struct {
	mu     sync.Mutex
	timers map[string]*time.Timer
	byName map[string]string // lock name -> key of its latest timer
}

func (e *expiryTimers) arm(key string, d time.Duration, f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.timers == nil {
		e.timers, e.byName = map[string]*time.Timer{}, map[string]string{}
	}
	name, _, _ := bytes.Cut([]byte(key), []byte{0})
	if old, ok := e.byName[string(name)]; ok {
		// A lock has one grant at a time: the one before has ended.
		if t := e.timers[old]; t != nil {
			t.Stop()
		}
		delete(e.timers, old)
	}
	e.timers[key] = time.AfterFunc(d, f)
	e.byName[string(name)] = key
}

func (e *expiryTimers) rearm(key string, d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if t := e.timers[key]; t != nil {
		t.Reset(d)
	}
}

func (e *expiryTimers) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	name, _, _ := bytes.Cut([]byte(key), []byte{0})
	if t := e.timers[key]; t != nil {
		t.Stop()
	}
	delete(e.timers, key)
	if e.byName[string(name)] == key {
		delete(e.byName, string(name))
	}
}

// disarm stops the check of name's grant, released here.
func (e *expiryTimers) disarm(name string) {
	e.mu.Lock()
	key, ok := e.byName[name]
	e.mu.Unlock()
	if ok {
		e.forget(key)
	}
}

// Stream settings: a client's buffer, how long one write may take, the
// keep-alive period (proxies close connections idle for a minute or so),
// and how long the replica's reader waits in one XREAD.
const (
	streamBuffer       = 256
	streamWriteTimeout = 5 * time.Second
	streamKeepAlive    = 15 * time.Second
	streamBlock        = time.Second
)

// events is GET /v1/events: Server-Sent Events from the shared stream.
// The replica's one stream reader (eventHub) feeds each client a buffered
// channel; a client that cannot keep up (the channel is full, or one write
// takes longer than streamWriteTimeout) is cut off rather than let it slow
// anything down. It reconnects with Last-Event-ID: an event still in the
// hub's ring is resumed from memory, an older one from the stream.
func (s *server) events(c *gin.Context) {
	ctx := c.Request.Context()
	last := c.GetHeader("Last-Event-ID")
	if last != "" && !lock.ValidEventID(last) {
		c.Error(badInput("Last-Event-ID %q is not an event id such as 1700000000000-0", truncate(last, 32)))
		return
	}
	w := &sseWriter{w: c.Writer, rc: http.NewResponseController(c.Writer)}
	// The hub cuts a client off only until leave returns, so never on a
	// connection that may serve another request.
	sub, err := s.hub.subscribe(ctx, w.cut)
	if err != nil {
		c.Error(err)
		return
	}
	defer s.hub.leave(sub)
	// Live before the client hears of the stream: an event it causes once
	// connected is not missed.
	backlog, live := s.hub.attach(sub, last, false)

	// The server's read and write timeouts are for ordinary requests; a
	// stream is bounded per write instead.
	_ = w.rc.SetReadDeadline(time.Time{})
	_ = w.rc.SetWriteDeadline(time.Time{})
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would buffer the stream otherwise
	c.Status(http.StatusOK)

	if !w.write([]byte(": connected\n\n")) {
		return
	}
	// Catch up from the stream, a page at a time, until the hub's ring
	// reaches back to the last event sent.
	for !live {
		evs, err := s.hub.page(ctx, last)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "event stream ended: Redis read failed", "err", err)
			}
			return
		}
		for _, ev := range evs {
			if !w.write(sseFrame(ev)) {
				return
			}
			last = ev.ID
		}
		select {
		case <-s.opts.Draining:
			return
		default:
		}
		backlog, live = s.hub.attach(sub, last, len(evs) == 0)
	}
	for _, b := range backlog {
		if !w.write(b) {
			return
		}
	}

	keepAlive := time.NewTicker(streamKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case b, ok := <-sub.frames:
			if !ok || !w.write(b) {
				return
			}
		case <-keepAlive.C:
			if !w.write([]byte(": keep-alive\n\n")) {
				return
			}
		case <-s.opts.Draining:
			return
		case <-ctx.Done():
			return
		}
	}
}

// sseFrame is one Server-Sent Event: the stream id, the type, and the
// stored JSON with the id added in front. Only emit writes the stream, but
// an entry that is not its JSON is still passed on, as a bare id.
func sseFrame(ev lock.StreamEvent) []byte {
	var e struct {
		Type string `json:"type"`
	}
	data := ev.Data
	if err := json.Unmarshal(data, &e); err != nil || !bytes.HasPrefix(data, []byte("{")) || e.Type == "" {
		e.Type, data = "unknown", []byte("{}")
	}
	id, _ := json.Marshal(ev.ID)
	var b bytes.Buffer
	b.WriteString("id: " + ev.ID + "\nevent: " + e.Type + "\ndata: {\"id\":")
	b.Write(id)
	if rest := data[1:]; !bytes.Equal(bytes.TrimSpace(rest), []byte("}")) {
		b.WriteByte(',')
		b.Write(rest)
	} else {
		b.WriteByte('}')
	}
	b.WriteString("\n\n")
	return b.Bytes()
}

// isLocked and isNotHolder keep the handlers' emit calls short.
func isLocked(err error) bool    { return errors.Is(err, lock.ErrLocked) }
func isNotHolder(err error) bool { return errors.Is(err, lock.ErrNotHolder) }
