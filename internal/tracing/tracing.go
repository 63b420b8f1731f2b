// Package tracing builds lockd's OpenTelemetry tracer provider from
// config.Tracing: none at all when tracing is off, so that nothing is
// started and nothing is sent, else one that batches spans to an OTLP/HTTP
// collector. The spans themselves are made where the work is: server spans
// in internal/httpapi, wait and Redis spans in internal/lock.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-distributed-lock/go-distributed-lock/internal/config"
)

// Provider is lockd's tracing: the tracer provider it hands to its layers,
// and the shutdown that sends the spans still buffered.
type Provider struct {
	sdk *sdktrace.TracerProvider // nil when tracing is off
}

// TracerProvider is what lockd's layers make spans with; nil when tracing
// is off, which they take as: no span work at all, not even a no-op's.
func (p *Provider) TracerProvider() trace.TracerProvider {
	if p.sdk == nil {
		return nil
	}
	return p.sdk
}

// New returns a Provider with no tracer provider when cfg is not Enabled; else one exporting
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
		return &Provider{}, nil
	}
	// The SDK reports its troubles (an export that failed, a malformed
	// OTEL_EXPORTER_OTLP_HEADERS or OTEL_TRACES_SAMPLER it ignored) through
	// the process's one global handler: by default a bare line on stderr,
	// here lockd's own log. Set first, so the exporter's own parsing of the
	// environment reports there too.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("tracing: OpenTelemetry SDK error; spans may be dropped", "err", err)
	}))
	otel.SetLogger(logr.New(sdkLog{log}))
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
		// Only the environment's attributes can be malformed.
		_ = exp.Shutdown(ctx)
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	log.Info("tracing on", "endpoint", endpointForLog(cfg.Endpoint), "service", cfg.ServiceName)
	return &Provider{sdk: sdk}, nil
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

// sdkLog is the OpenTelemetry SDK's own logger (otel.SetLogger): its
// errors and warnings go to lockd's log by message and error alone. Not its
// key-value pairs: they can repeat the input it could not parse, and for
// OTEL_EXPORTER_OTLP_HEADERS that input is a collector's API key.
type sdkLog struct{ log *slog.Logger }

func (sdkLog) Init(logr.RuntimeInfo) {}

// Enabled passes errors and warnings (the SDK's V(1)) only; its info and
// debug lines describe every export.
func (sdkLog) Enabled(level int) bool { return level <= 1 }

func (s sdkLog) Info(_ int, msg string, _ ...any) { s.log.Warn("tracing: " + msg) }

func (s sdkLog) Error(err error, msg string, _ ...any) {
	s.log.Warn("tracing: "+msg, "err", err)
}

func (s sdkLog) WithValues(...any) logr.LogSink { return s }
func (s sdkLog) WithName(string) logr.LogSink   { return s }
