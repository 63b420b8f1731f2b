package lock

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestTraceSpans: a wait gets one lock.wait span under the caller's span,
// saying how long it waited and how it ended, for a fair waiter served
// from the queue and for a plain one whose wait runs out; Redis commands
// make client spans only inside a caller's trace, never from a call
// without one or from background work (the fair queue's liveness looks run
// every 250 ms while the fair waiter waits).
func TestTraceSpans(t *testing.T) {
	t.Parallel()
	a, _, srv := setup(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	b := New(Config{Nodes: []*redis.Options{nodeOptions(srv.Addr, "pw")}, TracerProvider: tp})
	t.Cleanup(func() { _ = b.Close() })
	listen(t, b)
	ctx := context.Background()
	caller := tp.Tracer("caller")

	if _, err := b.TryAcquire(ctx, "untraced", Grant{TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans from a call outside any trace", n)
	}

	held, err := a.TryAcquire(ctx, "traced-wait", Grant{TTL: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fairCtx, fairSpan := caller.Start(ctx, "fair caller")
	got := make(chan error, 1)
	go func() {
		_, _, err := b.AcquireWait(fairCtx, "traced-wait", Grant{TTL: time.Second, Fair: true}, 10*time.Second)
		got <- err
	}()
	for b.waiting.Load() == 0 { // Waiting counts only the wake-and-retry waiters
		select {
		case err := <-got:
			t.Fatalf("the fair waiter did not wait: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	time.Sleep(600 * time.Millisecond) // two liveness looks
	if err := a.ReleaseToken(ctx, "traced-wait", held.Token); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	fairSpan.End()

	plainCtx, plainSpan := caller.Start(ctx, "plain caller")
	const wait = 200 * time.Millisecond
	if _, _, err := b.AcquireWait(plainCtx, "traced-wait", Grant{TTL: time.Second}, wait); !errors.Is(err, ErrLocked) {
		t.Fatalf("plain waiter: %v, want locked", err)
	}
	plainSpan.End()

	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	waits := map[string]map[attribute.Key]attribute.Value{}
	for _, s := range spans {
		parent, ok := byID[s.Parent.SpanID()]
		switch {
		case s.Name == "fair caller" || s.Name == "plain caller":
		case !ok:
			t.Errorf("span %q has no parent among the caller's spans", s.Name)
		case s.Name == "lock.wait":
			attrs := map[attribute.Key]attribute.Value{}
			for _, kv := range s.Attributes {
				attrs[kv.Key] = kv.Value
			}
			waits[parent.Name] = attrs
		case s.SpanKind != trace.SpanKindClient:
			t.Errorf("span %q: kind %v, want a Redis client span", s.Name, s.SpanKind)
		}
	}
	fair, plain := waits["fair caller"], waits["plain caller"]
	if fair["lock.result"].AsString() != "granted" || !fair["lock.fair"].AsBool() || fair["lock.waited_ms"].AsFloat64() < 500 {
		t.Errorf("fair wait span %v, want granted, fair, at least the 600 ms before the release", fair)
	}
	if plain["lock.result"].AsString() != "locked" || plain["lock.fair"].AsBool() || plain["lock.waited_ms"].AsFloat64() < float64(wait.Milliseconds())*0.9 {
		t.Errorf("plain wait span %v, want locked after about %v", plain, wait)
	}
}

// TestNewConnectionsStayOutOfTraces: a traced call that has to dial (its
// replica's connections were all cut) shows only its own command, not the
// new connection's setup (SELECT, CLIENT SETINFO, SCRIPT LOAD, the restart
// check's INFO).
func TestNewConnectionsStayOutOfTraces(t *testing.T) {
	t.Parallel()
	_, rdb, srv := setup(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	o := nodeOptions(srv.Addr, "pw")
	o.DB = 1 // so that go-redis's own setup sends a SELECT too
	m := New(Config{Nodes: []*redis.Options{o}, TracerProvider: tp})
	t.Cleanup(func() { _ = m.Close() })
	ctx := context.Background()
	if err := m.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	// Cut every connection but the test's own: the next call dials.
	if err := rdb.Do(ctx, "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	callCtx, span := tp.Tracer("caller").Start(ctx, "caller")
	if _, err := m.TryAcquire(callCtx, "dialed", Grant{TTL: time.Second}); err != nil {
		t.Fatal(err)
	}
	span.End()
	var names []string
	for _, s := range exp.GetSpans() {
		if s.Name != "caller" {
			names = append(names, s.Name)
		}
	}
	if len(names) != 1 || names[0] != "evalsha" {
		t.Fatalf("spans under the call: %q, want only its evalsha", names)
	}
}
