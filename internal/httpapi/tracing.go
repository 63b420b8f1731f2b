package httpapi

import (
	"net/http"
	"strconv"
	"strings"

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
		method := c.Request.Method
		if !knownMethods[method] {
			// Any token is a method to Go's server: a client inventing
			// one per request must not invent span names too.
			method = "_OTHER"
		}
		name := method // an unmatched route: the method alone, as OpenTelemetry's conventions say
		if route != "" {
			name += " " + route
		}
		scheme := "http"
		if c.Request.TLS != nil {
			scheme = "https"
		}
		attrs := []attribute.KeyValue{
			attribute.String("http.request.method", method),
			attribute.String("url.scheme", scheme),
			attribute.String("client.address", c.ClientIP()),
			attribute.String("network.protocol.version", strconv.Itoa(c.Request.ProtoMajor)+"."+strconv.Itoa(c.Request.ProtoMinor)),
		}
		if route != "" {
			attrs = append(attrs, attribute.String("http.route", route))
		}
		if method != c.Request.Method {
			attrs = append(attrs, attribute.String("http.request.method_original", clientText(c.Request.Method)))
		}
		if ua := c.Request.UserAgent(); ua != "" {
			attrs = append(attrs, attribute.String("user_agent.original", clientText(ua)))
		}
		if recordNames {
			attrs = append(attrs, attribute.String("url.path", clientText(c.Request.URL.Path)))
			if q := c.Request.URL.RawQuery; q != "" {
				attrs = append(attrs, attribute.String("url.query", clientText(q)))
			}
			if lock := lockName(c); lock != "" {
				attrs = append(attrs, attribute.String("lock.name", clientText(lock)))
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

// knownMethods are the methods of RFC 9110 and PATCH, which a span may be
// named by.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true, http.MethodOptions: true,
	http.MethodTrace: true,
}

// maxAttrText bounds an attribute taken from the request.
const maxAttrText = 256

// clientText makes a string the client sent fit for a span: at most
// maxAttrText bytes, and valid UTF-8. OTLP carries strings as protobuf
// strings, which must be UTF-8: one invalid byte (a User-Agent of
// "\xff", a path with %FF) fails the export of the whole batch, every
// other request's spans with it, so one hostile client could blind
// tracing for everyone.
func clientText(s string) string {
	return strings.ToValidUTF8(truncate(s, maxAttrText), "\uFFFD")
}
