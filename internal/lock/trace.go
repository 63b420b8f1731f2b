package lock

import (
	"context"
	"time"

	"github.com/redis/go-redis/extra/redisotel/v9"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// tracerName is the instrumentation scope of the spans this package makes.
const tracerName = "github.com/go-distributed-lock/go-distributed-lock/internal/lock"

// traceRedis gives the commands of client spans (redisotel's), children of
// the request that sent them. Only the command's name is recorded, never
// its arguments: a script's carry lock names, tokens and owners.
// Background work (the release listener, queue looks, probes, expiry
// timers) has no span in its context and makes none, so a collector sees
// requests, not a span every 100 ms per replica.
func traceRedis(c redis.UniversalClient, tp trace.TracerProvider) {
	// InstrumentTracing fails only for client types it does not know;
	// lockd makes only the three it does.
	_ = redisotel.InstrumentTracing(c,
		redisotel.WithTracerProvider(childSpansOnly{tp}),
		redisotel.WithDBStatement(false),
		redisotel.WithCallerEnabled(false),
		redisotel.WithCommandsFilter(connectionSetup))
}

// connectionSetup tells the pipelines that set a new connection up: go-
// redis's own (SELECT, CLIENT SETINFO) and onConnect's (SCRIPT LOAD, the
// restart check's INFO). A request that happens to dial a connection runs
// them in its context, but they are lockd's bookkeeping, not the request's
// work, so they stay out of its trace. No request pipeline starts so.
func connectionSetup(cmds []redis.Cmder) bool {
	if len(cmds) == 0 {
		return false
	}
	switch cmds[0].Name() {
	case "hello", "auth", "select", "client", "script", "info":
		return true
	}
	return false
}

// childSpansOnly is a TracerProvider whose tracers start a span only inside
// a trace already under way; elsewhere they return the context's own
// (no-op) span.
type childSpansOnly struct{ trace.TracerProvider }

func (p childSpansOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childTracer{p.TracerProvider.Tracer(name, opts...)}
}

type childTracer struct{ trace.Tracer }

func (t childTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.Tracer.Start(ctx, name, opts...)
}

// tracerOf is the tracer of Config.TracerProvider, a no-op one when unset.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(tracerName)
}

// waitSpan is the span of the time a request spends waiting for a lock:
// started at the first refusal it waits out, ended with the answer.
type waitSpan struct {
	span  trace.Span
	start time.Time
}

// begin starts the span, once, as a child of ctx, and returns the context
// later attempts run in, so their Redis commands show inside the wait.
func (w *waitSpan) begin(ctx context.Context, tracer trace.Tracer, fair bool) context.Context {
	if w.span != nil {
		return ctx
	}
	w.start = time.Now()
	ctx, w.span = tracer.Start(ctx, "lock.wait", trace.WithAttributes(attribute.Bool("lock.fair", fair)))
	return ctx
}

// end records how long the request waited and how the wait ended, in the
// Observer's words (never a name, token or owner).
func (w *waitSpan) end(err error) {
	if w.span == nil {
		return
	}
	w.span.SetAttributes(
		attribute.Float64("lock.waited_ms", float64(time.Since(w.start).Microseconds())/1000),
		attribute.String("lock.result", resultOf(err)),
	)
	w.span.End()
}
