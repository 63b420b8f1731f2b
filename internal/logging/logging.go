// Package logging builds lockd's slog logger. The "json" format is slog's
// JSON handler, for machines. The "text" format keeps the look of the
// project's README, which people compare their terminal against: the
// standard library's "2006/01/02 15:04:05 message" lines, and Gin's
// "[GIN] ... | 200 | 1.2s | ip | GET "/path"" access lines.
package logging

import (
	"context"
	"fmt"
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
	attrs := append([]slog.Attr(nil), h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, qualify(h.prefix, []slog.Attr{a})...)
		return true
	})
	var b strings.Builder
	if r.Message == AccessMessage {
		writeAccess(&b, r.Time, attrs)
	} else {
		b.WriteString(r.Time.Format("2006/01/02 15:04:05 "))
		b.WriteString(r.Message)
		for _, a := range attrs {
			writeAttr(&b, a)
		}
	}
	b.WriteByte('\n')
	h.out.write([]byte(b.String()))
	return nil
}

// writeAccess prints Gin's access layout, then any attributes it has no
// column for (a request id, say).
func writeAccess(b *strings.Builder, t time.Time, attrs []slog.Attr) {
	col := map[string]slog.Value{}
	var rest []slog.Attr
	for _, a := range attrs {
		switch a.Key {
		case KeyStatus, KeySeconds, KeyClientIP, KeyMethod, KeyPath:
			col[a.Key] = a.Value.Resolve()
		default:
			rest = append(rest, a)
		}
	}
	latency := time.Duration(col[KeySeconds].Float64() * float64(time.Second))
	fmt.Fprintf(b, "[GIN] %s | %d | %v | %s | %s %q",
		t.Format("2006/01/02 - 15:04:05"), col[KeyStatus].Int64(), latency,
		col[KeyClientIP].String(), col[KeyMethod].String(), col[KeyPath].String())
	for _, a := range rest {
		writeAttr(b, a)
	}
}

func writeAttr(b *strings.Builder, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			writeAttr(b, slog.Attr{Key: a.Key + "." + g.Key, Value: g.Value})
		}
		return
	}
	if a.Key == "" {
		return
	}
	s := v.String()
	if s == "" || strings.ContainsAny(s, " \t\n\"=") || !strconv.CanBackquote(s) {
		s = strconv.Quote(s)
	}
	b.WriteString(" " + a.Key + "=" + s)
}
