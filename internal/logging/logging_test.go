package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func TestTextLooksLikeTheREADME(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "text")
	log.Info("Lock acquired for resource my-key-1, performing critical operation")
	log.Info(AccessMessage,
		KeyStatus, 500, KeySeconds, 4.719088348, KeyClientIP, "172.19.0.1",
		KeyMethod, "GET", KeyPath, "/lock?resource_id=my-key-1")
	log.With("node", 0).Info("Redis unreachable, retrying", "err", errors.New("dial tcp: refused"), "addr", "localhost:6379")
	log.Debug("not shown")

	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{
		`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d Lock acquired for resource my-key-1, performing critical operation$`,
		`^\[GIN\] \d{4}/\d\d/\d\d - \d\d:\d\d:\d\d \| 500 \| 4\.719088348s \| 172\.19\.0\.1 \| GET "/lock\?resource_id=my-key-1"$`,
		`^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d Redis unreachable, retrying node=0 err="dial tcp: refused" addr=localhost:6379$`,
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, re := range want {
		if !regexp.MustCompile(re).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want match for %s", i, lines[i], re)
		}
	}
}

func TestJSON(t *testing.T) {
	var buf bytes.Buffer
	New(&buf, "json").Info(AccessMessage, KeyStatus, 200, KeySeconds, (30 * time.Second).Seconds())
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("not JSON: %q", buf.String())
	}
	if rec["msg"] != AccessMessage || rec[KeyStatus] != float64(200) || rec["level"] != slog.LevelInfo.String() {
		t.Fatalf("got %v", rec)
	}
}

// TestJSONCarriesTheTrace: a record logged in a traced request's context
// names its trace and span; one outside any trace names none.
func TestJSONCarriesTheTrace(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	for _, tt := range []struct {
		name        string
		ctx         context.Context
		trace, span any
	}{
		{"traced", trace.ContextWithSpanContext(context.Background(), sc), "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"},
		{"untraced", context.Background(), nil, nil},
	} {
		var buf bytes.Buffer
		New(&buf, "json").InfoContext(tt.ctx, "lock acquired")
		var rec map[string]any
		if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
			t.Fatalf("%s: not JSON: %q", tt.name, buf.String())
		}
		if rec[KeyTraceID] != tt.trace || rec[KeySpanID] != tt.span {
			t.Errorf("%s: trace_id %v span_id %v, want %v %v", tt.name, rec[KeyTraceID], rec[KeySpanID], tt.trace, tt.span)
		}
	}
}

// BenchmarkAccessLine: one access record in the text format, as lockd
// writes one per request.
//
//	go test -run '^$' -bench AccessLine -benchmem ./internal/logging
func BenchmarkAccessLine(b *testing.B) {
	log := New(io.Discard, "text")
	ctx := context.Background()
	for b.Loop() {
		log.LogAttrs(ctx, slog.LevelInfo, AccessMessage,
			slog.Int(KeyStatus, 200), slog.Float64(KeySeconds, 0.000412), slog.String(KeyClientIP, "127.0.0.1"),
			slog.String(KeyMethod, "POST"), slog.String(KeyPath, "/v1/locks/orders-42/acquire"))
	}
}
