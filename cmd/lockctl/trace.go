package main

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
)

// traceFromEnv continues the caller's trace: it returns ctx carrying the
// W3C trace context in TRACEPARENT and TRACESTATE, the names
// OpenTelemetry's "environment variables as context propagation carriers"
// gives the traceparent and tracestate headers (a CI job or a traced
// script exports them). The client sends it with every request, so
// lockd's spans join that trace. lockctl makes no spans of its own (it
// starts no exporter), so lockd's are children of the caller's span. A
// missing or malformed TRACEPARENT leaves ctx as it was: W3C trace context
// says to start afresh rather than fail.
func traceFromEnv(ctx context.Context, getenv func(string) string) context.Context {
	carrier := propagation.MapCarrier{}
	if v := getenv("TRACEPARENT"); v != "" {
		carrier.Set("traceparent", v)
	}
	if v := getenv("TRACESTATE"); v != "" {
		carrier.Set("tracestate", v)
	}
	return propagation.TraceContext{}.Extract(ctx, carrier)
}
