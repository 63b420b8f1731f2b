package httpapi

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of lockd's server spans.
const tracerName = "github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"

// untraced are the routes that get no span: probes and scrapes arrive every
// few seconds from machines, and the dashboard's files are not requests
// anyone traces.
var untraced = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true, "/": true, "/ui": true, "/ui/*file": true}

// errorCodeKey is where writeError leaves the answer's error code, for the
// span.
const errorCodeKey = "httpapi.error_code"

// traceRequests gives each request a server span, continuing the caller's
// trace when the request carries W3C trace context (traceparent). The span
// is named and tagged by route template, "POST /v1/locks/:name/acquire",
// never by the path: a lock name may carry user data, so it, the raw path
// and the query are recorded only with recordNames (OTEL_RECORD_LOCK_NAMES).
// Tokens and owners are in bodies and headers, which are never recorded.
//
// Not otelgin: it records the raw path (url.path) on every span, and each
// c.Error's text, which can name a lock's owner, with no way to turn
// either off.
func traceRequests(tp trace.TracerProvider, recordNames bool) gin.HandlerFunc {
	tracer := tp.Tracer(tracerName)
	w3c := propagation.TraceContext{}
	return func(c *gin.Context) {
		route := c.FullPath()
		if untraced[route] {
			c.Next()
			return
		}
		ctx := w3c.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
		name := c.Request.Method // an unmatched route: the method alone, as OpenTelemetry's conventions say
		if route != "" {
			name += " " + route
		}
		scheme := "http"
		if c.Request.TLS != nil {
			scheme = "https"
		}
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", c.Request.Method),
			attribute.String("url.scheme", scheme),
			attribute.String("client.address", c.ClientIP()),
			attribute.String("network.protocol.version", strconv.Itoa(c.Request.ProtoMajor)+"."+strconv.Itoa(c.Request.ProtoMinor)),
		}
		if route != "" {
			attrs = append(attrs, attribute.String("http.route", route))
		}
		if ua := c.Request.UserAgent(); ua != "" {
			attrs = append(attrs, attribute.String("user_agent.original", ua))
		}
		if recordNames {
			attrs = append(attrs, attribute.String("url.path", c.Request.URL.Path))
			if q := c.Request.URL.RawQuery; q != "" {
				attrs = append(attrs, attribute.String("url.query", q))
			}
			if lock := lockName(c); lock != "" {
				attrs = append(attrs, attribute.String("lock.name", lock))
			}
		}
		ctx, span := tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
		defer span.End()
		c.Request = c.Request.WithContext(ctx)
		c.Next()

		status := c.Writer.Status()
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if code := c.GetString(errorCodeKey); code != "" {
			// The stable code of the error answer ("locked", "not_holder"),
			// never its message, which can name the holder.
			span.SetAttributes(attribute.String("lockd.error_code", code))
		}
		// A 4xx is the caller's answer, not the server failing: only a
		// 5xx marks the span as an error, as the conventions say.
		if status >= http.StatusInternalServerError {
			span.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
			span.SetStatus(codes.Error, "")
		}
	}
}

// lockName is the lock a request is about, if any: the route's :name, or
// the demo's resource_id.
func lockName(c *gin.Context) string {
	if name := c.Param("name"); name != "" {
		return name
	}
	if c.FullPath() == "/lock" {
		return c.Query("resource_id")
	}
	return ""
}
