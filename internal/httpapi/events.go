package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// Event types, as /v1/events and doc/openapi.yaml name them.
const (
	evAcquired  = lock.EventAcquired
	evExtended  = lock.EventExtended
	evReleased  = lock.EventReleased
	evExpired   = lock.EventExpired
	evContended = lock.EventContended
	evLost      = lock.EventLost
)

// Stream settings: a client's buffer, how long one write may take, the
// keep-alive period (proxies close connections idle for a minute or so),
// and how long the replica's reader waits in one XREAD.
const (
	streamBuffer       = 256
	streamWriteTimeout = 5 * time.Second
	streamKeepAlive    = 15 * time.Second
	streamBlock        = time.Second
)

// events is GET /v1/events: Server-Sent Events from the shared streams.
// The replica's stream readers (eventHub) feed each client a buffered
// channel; a client that cannot keep up (the channel is full, or one write
// takes longer than streamWriteTimeout) is cut off rather than let it slow
// anything down. It reconnects with Last-Event-ID, a lock.Position: an
// event still in the hub's ring is resumed from memory, an older one from
// the streams.
func (s *server) events(c *gin.Context) {
	ctx := c.Request.Context()
	var last lock.Position // none: live from now
	if h := c.GetHeader("Last-Event-ID"); h != "" {
		p, err := s.locks.ParsePosition(h)
		if err != nil {
			c.Error(err)
			return
		}
		last = p.Fill(s.locks.EventShards())
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
	backlog, carry, live := s.hub.attach(sub, last, false)

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
	// Catch up from the streams, a page at a time, until the hub's ring
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
			last = last.With(ev.Shard, ev.ID)
			if !w.write(sseFrame(last.String(), ev.Data)) {
				return
			}
		}
		select {
		case <-s.opts.Draining:
			return
		default:
		}
		backlog, carry, live = s.hub.attach(sub, last, len(evs) == 0)
	}
	var frame []byte
	for _, ev := range backlog {
		if frame, carry = carryOn(ev, carry); !w.write(frame) {
			return
		}
	}

	keepAlive := time.NewTicker(streamKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case ev, ok := <-sub.events:
			if !ok {
				return
			}
			if frame, carry = carryOn(ev, carry); !w.write(frame) {
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

// sseFrame is one Server-Sent Event: id (a lock.Position), the type, and
// the stored JSON data with the id added in front. Only lockd writes the
// streams, but an entry that is not its JSON is still passed on, as a bare
// id.
func sseFrame(id string, data []byte) []byte {
	var e struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(data, &e); err != nil || !bytes.HasPrefix(data, []byte("{")) || e.Type == "" {
		e.Type, data = "unknown", []byte("{}")
	}
	quoted, _ := json.Marshal(id)
	var b bytes.Buffer
	b.WriteString("id: " + id + "\nevent: " + e.Type + "\ndata: {\"id\":")
	b.Write(quoted)
	if rest := data[1:]; !bytes.Equal(bytes.TrimSpace(rest), []byte("}")) {
		b.WriteByte(',')
		b.Write(rest)
	} else {
		b.WriteByte('}')
	}
	b.WriteString("\n\n")
	return b.Bytes()
}
