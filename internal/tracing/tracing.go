// Package tracing builds lockd's OpenTelemetry tracer provider from
// config.Tracing: a no-op one when tracing is off, so that nothing is
// started and nothing is sent, else one that batches spans to an OTLP/HTTP
// collector. The spans themselves are made where the work is: server spans
// in internal/httpapi, wait and Redis spans in internal/lock.
package tracing

import (
	"context"
	"log/slog"
	"net/url"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
)

// Provider is the tracer provider lockd hands to its layers, with the
// shutdown that sends the spans still buffered.
type Provider struct {
	trace.TracerProvider
	sdk *sdktrace.TracerProvider // nil when tracing is off
}

// New returns a no-op Provider when cfg is not Enabled; else one exporting
// to cfg.Endpoint (the SDK's default when empty), with service.name
// cfg.ServiceName and service.instance.id instance (the replica's name).
// The SDK reads the other OTEL_* variables from the process environment:
// OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
// OTEL_TRACES_SAMPLER and its argument, OTEL_RESOURCE_ATTRIBUTES and the
// batch processor's OTEL_BSP_*. Nothing is sent until the first span ends,
// and a collector that cannot be reached costs dropped spans and a logged
// warning, never a failed request. It returns the exporter's or resource's
// configuration error.
func New(ctx context.Context, cfg config.Tracing, instance string, log *slog.Logger) (*Provider, error) {
	if !cfg.Enabled {
		return &Provider{TracerProvider: noop.NewTracerProvider()}, nil
	}
	var opts []otlptracehttp.Option
	if cfg.Endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(cfg.Endpoint))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	// Later sources win: the replica's own name over anything in
	// OTEL_RESOURCE_ATTRIBUTES.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithFromEnv(),
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName), semconv.ServiceInstanceID(instance)))
	if err != nil {
		return nil, err
	}
	// The SDK reports export failures through the process's one global
	// handler; by default a bare line on stderr, here lockd's own log.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("trace export failed; spans dropped", "err", err)
	}))
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing on", "endpoint", endpointForLog(cfg.Endpoint), "service", cfg.ServiceName)
	return &Provider{TracerProvider: sdk, sdk: sdk}, nil
}

// Shutdown sends the spans still buffered and stops the exporter, within
// ctx. It does nothing when tracing is off.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p.sdk == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// endpointForLog is where spans go, as the startup line shows it: scheme
// and host only, or the SDK's default.
func endpointForLog(endpoint string) string {
	if endpoint == "" {
		return "default (OTEL_EXPORTER_OTLP_* or http://localhost:4318)"
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return "(unparsable)"
	}
	return u.Scheme + "://" + u.Host
}
