package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"sync"
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

// Stream settings: a client's buffer, how long one write may take, and the
// keep-alive period (proxies close connections idle for a minute or so).
const (
	streamBuffer       = 256
	streamWriteTimeout = 5 * time.Second
	streamKeepAlive    = 15 * time.Second
	streamBlock        = time.Second
)

// events is GET /v1/events: Server-Sent Events from the shared stream.
// Each client has its own XREAD BLOCK loop feeding a buffered channel; a
// client that cannot keep up (the channel is full, or one write takes
// longer than streamWriteTimeout) is cut off rather than let it slow
// anything down. It reconnects with Last-Event-ID and catches up from the
// stream.
func (s *server) events(c *gin.Context) {
	ctx := c.Request.Context()
	last := c.GetHeader("Last-Event-ID")
	if last == "" {
		id, err := s.locks.LastEventID(ctx)
		if err != nil {
			c.Error(err)
			return
		}
		last = id
	} else if !lock.ValidEventID(last) {
		c.Error(badInput("Last-Event-ID %q is not an event id such as 1700000000000-0", truncate(last, 32)))
		return
	}

	rc := http.NewResponseController(c.Writer)
	// The server's read and write timeouts are for ordinary requests; a
	// stream is bounded per write instead.
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	h := c.Writer.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx would buffer the stream otherwise
	c.Status(http.StatusOK)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	feed := make(chan lock.StreamEvent, streamBuffer)
	// The reader is not waited for: go-redis does not abandon a blocked
	// XREAD when its context ends, so it may outlive the stream by up to
	// streamBlock, and then stops. Nothing else waits for it either.
	var mu sync.Mutex // guards the connection once the handler has returned
	returned := false
	defer func() { mu.Lock(); returned = true; mu.Unlock() }()
	go func() {
		defer close(feed)
		s.feed(ctx, last, feed, func() {
			// Too slow: end the stream, and any write stuck on it, now;
			// but never touch a connection that may serve another request.
			mu.Lock()
			defer mu.Unlock()
			cancel()
			if !returned {
				_ = rc.SetWriteDeadline(time.Now())
			}
		})
	}()

	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := c.Writer.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !write([]byte(": connected\n\n")) {
		return
	}
	keepAlive := time.NewTicker(streamKeepAlive)
	defer keepAlive.Stop()
	for {
		select {
		case ev, ok := <-feed:
			if !ok || !write(sseFrame(ev)) {
				return
			}
		case <-keepAlive.C:
			if !write([]byte(": keep-alive\n\n")) {
				return
			}
		case <-s.opts.Draining:
			return
		case <-ctx.Done():
			return
		}
	}
}

// feed reads the stream after last into out until ctx ends or Redis fails
// (the stream then ends and the client reconnects), calling tooSlow and
// stopping when out is full.
func (s *server) feed(ctx context.Context, last string, out chan<- lock.StreamEvent, tooSlow func()) {
	for ctx.Err() == nil {
		evs, err := s.locks.ReadEvents(ctx, last, 100, streamBlock)
		if err != nil {
			if ctx.Err() == nil {
				s.log.WarnContext(ctx, "event stream ended: Redis read failed", "err", err)
			}
			return
		}
		for _, ev := range evs {
			select {
			case out <- ev:
			case <-ctx.Done():
				return
			default:
				s.log.WarnContext(ctx, "event stream dropped a consumer that could not keep up")
				tooSlow()
				return
			}
			last = ev.ID
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
