package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestServerSpans: each request gets one server span named by its route
// template; names and paths are recorded only when asked; an error answer
// adds its code, and only a 5xx marks the span as failed; probes and
// scrapes get none.
func TestServerSpans(t *testing.T) {
	t.Parallel()
	for _, record := range []bool{false, true} {
		exp := tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
		c := startCluster(t, 1, Options{TracerProvider: tp, RecordLockNames: record})
		r := c.replicas[0]
		const name = "span-order-7"
		l := r.acquire(t, name, `{"ttl":"10s","owner":"span-owner"}`)
		if got := post(t, r.url+"/v1/locks/"+name+"/acquire", `{"ttl":"10s"}`); got.status != http.StatusConflict {
			t.Fatalf("second acquire: %d", got.status)
		}
		get(t, r.url+"/healthz")
		get(t, r.url+"/readyz")
		get(t, r.url+"/no/such/"+name)
		c.srv.Stop()
		if got := post(t, r.url+"/v1/locks/"+name+"/release", tokenBody(l.Token)); got.status != http.StatusServiceUnavailable {
			t.Fatalf("release with Redis gone: %d", got.status)
		}

		spans := exp.GetSpans()
		type want struct {
			name, route, code string
			status            int64
			failed            bool
		}
		wants := []want{
			{"POST /v1/locks/:name/acquire", "/v1/locks/:name/acquire", "", 200, false},
			{"POST /v1/locks/:name/acquire", "/v1/locks/:name/acquire", "locked", 409, false},
			{"GET", "", "not_found", 404, false},
			{"POST /v1/locks/:name/release", "/v1/locks/:name/release", "unavailable", 503, true},
		}
		if len(spans) != len(wants) {
			t.Fatalf("record=%v: %d spans, want %d (none for /healthz and /readyz): %v", record, len(spans), len(wants), spans)
		}
		for i, w := range wants {
			s := spans[i]
			attrs := attribute.NewSet(s.Attributes...)
			val := func(k string) attribute.Value { v, _ := attrs.Value(attribute.Key(k)); return v }
			if s.Name != w.name || s.SpanKind != trace.SpanKindServer || val("http.route").AsString() != w.route ||
				val("lockd.error_code").AsString() != w.code || val("http.response.status_code").AsInt64() != w.status ||
				(s.Status.Code == codes.Error) != w.failed {
				t.Errorf("record=%v span %d: %q kind %v status %v %v, want %+v", record, i, s.Name, s.SpanKind, s.Status, s.Attributes, w)
			}
			all := s.Name
			for _, kv := range s.Attributes {
				all += " " + string(kv.Key) + "=" + kv.Value.Emit()
			}
			if strings.Contains(all, l.Token) || strings.Contains(all, "span-owner") {
				t.Errorf("span %q carries the token or the owner: %s", s.Name, all)
			}
			if strings.Contains(all, name) != record {
				t.Errorf("record=%v: span %q names the lock: %v (%s)", record, s.Name, strings.Contains(all, name), all)
			}
		}
	}
}

// TestServerSpanContinuesTheCaller: a request with W3C trace context gets a
// server span that is the caller's span's child, in the caller's trace.
func TestServerSpanContinuesTheCaller(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	c := startCluster(t, 1, Options{TracerProvider: tp})
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	got := callWith(t, context.Background(), "POST", c.replicas[0].url+"/v1/locks/caller-span/acquire", `{"ttl":"5s"}`,
		http.Header{"Traceparent": {traceparent}, "Content-Type": {"application/json"}})
	if got.status != http.StatusOK {
		t.Fatalf("acquire: %d %s", got.status, got.body)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if s.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent.SpanID().String() != "00f067aa0ba902b7" || !s.Parent.IsRemote() {
		t.Errorf("span in trace %s under %s (remote %v), want the caller's trace and span", s.SpanContext.TraceID(), s.Parent.SpanID(), s.Parent.IsRemote())
	}
}
