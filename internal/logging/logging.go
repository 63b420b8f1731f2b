// Package logging builds lockd's slog logger. The "json" format is slog's
// JSON handler, for machines. The "text" format keeps the look of the
// project's README, which people compare their terminal against: the
// standard library's "2006/01/02 15:04:05 message" lines, and Gin's
// "[GIN] ... | 200 | 1.2s | ip | GET "/path"" access lines.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// AccessMessage is the message of a per-request access record; the text
// format prints such records in Gin's layout.
const AccessMessage = "http request"

// Attribute keys of an access record.
const (
	KeyStatus   = "status"
	KeySeconds  = "duration_seconds"
	KeyClientIP = "client_ip"
	KeyMethod   = "method"
	KeyPath     = "path"
)

// KeyRequestID is the attribute that carries a request's id in JSON logs.
const KeyRequestID = "request_id"

// KeyTraceID and KeySpanID carry a traced request's W3C trace and span ids
// in JSON logs.
const (
	KeyTraceID = "trace_id"
	KeySpanID  = "span_id"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying id; JSON records logged with it carry
// the id as request_id. (The text format keeps the README's look and omits
// it.)
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID is the id WithRequestID put in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// New returns a logger writing format ("text" or "json") to w.
func New(w io.Writer, format string) *slog.Logger {
	if format == "json" {
		return slog.New(requestIDHandler{slog.NewJSONHandler(w, nil)})
	}
	return slog.New(&textHandler{out: &lockedWriter{w: w}})
}

// requestIDHandler adds the request id from the record's context, and the
// trace and span ids when the request is traced, so a log line leads to
// its trace and back.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String(KeyRequestID, id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String(KeyTraceID, sc.TraceID().String()), slog.String(KeySpanID, sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(as)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) write(b []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}

// textHandler prints records as the README shows them. Levels are not
// printed: messages that report a failure say so themselves ("Error: ...").
type textHandler struct {
	out    *lockedWriter
	attrs  []slog.Attr
	prefix string // group prefix for attribute keys
}

func (h *textHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (h *textHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), qualify(h.prefix, as)...)
	return &c
}

func (h *textHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.prefix = h.prefix + name + "."
	return &c
}

func qualify(prefix string, as []slog.Attr) []slog.Attr {
	if prefix == "" {
		return as
	}
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = slog.Attr{Key: prefix + a.Key, Value: a.Value}
	}
	return out
}

func (h *textHandler) Handle(_ context.Context, r slog.Record) error {
	attrs := make([]slog.Attr, 0, len(h.attrs)+r.NumAttrs())
	attrs = append(attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		a.Key = h.prefix + a.Key
		attrs = append(attrs, a)
		return true
	})
	// One line per request: built in a pooled buffer with append calls
	// rather than fmt, which cost each request a few microseconds.
	buf := linePool.Get().(*[]byte)
	b := (*buf)[:0]
	if r.Message == AccessMessage {
		b = appendAccess(b, r.Time, attrs)
	} else {
		b = r.Time.AppendFormat(b, "2006/01/02 15:04:05 ")
		b = append(b, r.Message...)
		for _, a := range attrs {
			b = appendAttr(b, a)
		}
	}
	b = append(b, '\n')
	h.out.write(b)
	if cap(b) <= 64<<10 { // a rare huge line is not kept for ever
		*buf = b
		linePool.Put(buf)
	}
	return nil
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// appendAccess prints Gin's access layout, then any attributes it has no
// column for (a request id, say).
func appendAccess(b []byte, t time.Time, attrs []slog.Attr) []byte {
	var (
		status             int64
		latency            time.Duration
		ip, method, target string
		rest               []slog.Attr
	)
	for _, a := range attrs {
		v := a.Value.Resolve()
		switch {
		case a.Key == KeyStatus && v.Kind() == slog.KindInt64:
			status = v.Int64()
		case a.Key == KeySeconds && v.Kind() == slog.KindFloat64:
			latency = time.Duration(v.Float64() * float64(time.Second))
		case a.Key == KeyClientIP:
			ip = v.String()
		case a.Key == KeyMethod:
			method = v.String()
		case a.Key == KeyPath:
			target = v.String()
		default:
			rest = append(rest, a)
		}
	}
	b = append(b, "[GIN] "...)
	b = t.AppendFormat(b, "2006/01/02 - 15:04:05")
	b = append(b, " | "...)
	b = strconv.AppendInt(b, status, 10)
	b = append(b, " | "...)
	b = append(b, latency.String()...)
	b = append(b, " | "...)
	b = append(b, ip...)
	b = append(b, " | "...)
	b = append(b, method...)
	b = append(b, ' ')
	b = strconv.AppendQuote(b, target)
	for _, a := range rest {
		b = appendAttr(b, a)
	}
	return b
}

func appendAttr(b []byte, a slog.Attr) []byte {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			b = appendAttr(b, slog.Attr{Key: a.Key + "." + g.Key, Value: g.Value})
		}
		return b
	}
	if a.Key == "" {
		return b
	}
	b = append(b, ' ')
	b = append(b, a.Key...)
	b = append(b, '=')
	s := v.String()
	if s == "" || strings.ContainsAny(s, " \t\n\"=") || !strconv.CanBackquote(s) {
		return strconv.AppendQuote(b, s)
	}
	return append(b, s...)
}
