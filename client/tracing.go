package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"syscall"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// tracerName is the instrumentation scope of the client's spans.
const tracerName = "github.com/go-distributed-lock/go-distributed-lock/client"

// injectTraceContext writes the W3C traceparent and tracestate of ctx's
// span into h. It uses TraceContext itself rather than otel's global
// propagator, which does nothing until the application sets one: the
// caller's trace should continue into lockd either way, and lockd speaks
// only W3C trace context.
func injectTraceContext(ctx context.Context, h http.Header) {
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
}

// serverAttributes name the service a client talks to. Only the host and
// port: the path and query may hold a lock's name.
func serverAttributes(u *url.URL) []attribute.KeyValue {
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		port = 80
		if u.Scheme == "https" {
			port = 443
		}
	}
	return []attribute.KeyValue{semconv.ServerAddress(u.Hostname()), semconv.ServerPort(port)}
}

// renewalLinkKey marks a renewal's context: it holds the span context the
// renewal spans link to (see Lease.KeepAlive).
type renewalLinkKey struct{}

// startSpan starts the client span of one request. Names and attributes
// are fixed words, the method and the service's address: never the lock's
// name, a token or an owner, which may carry user data or secrets.
func (c *Client) startSpan(ctx context.Context, op, method string) (context.Context, trace.Span) {
	opts := []trace.SpanStartOption{
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method)),
		trace.WithAttributes(c.server...),
	}
	if link, ok := ctx.Value(renewalLinkKey{}).(trace.SpanContext); ok && link.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: link}))
	}
	return c.tracer.Start(ctx, "lockd "+op, opts...)
}

// endSpan records how a request ended and ends its span. status is the
// answer's HTTP status, 0 when none came.
//
// The span's status is Error for failures someone should look at: no
// answer, a 5xx, a 4xx other than 409, or an answer that does not
// decode. A 409 (locked, not_holder, stale_fence, lock_delay and the other
// answers about a lock's state) is the service doing its job, as is a
// caller giving up (its ctx ended): they only get error.type, so a trace
// full of busy try-locks does not look like an outage.
func endSpan(ctx context.Context, span trace.Span, status int, err error) {
	defer span.End()
	if !span.IsRecording() {
		return
	}
	if status != 0 {
		span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	}
	if err == nil {
		return
	}
	var api *APIError
	switch {
	case errors.As(err, &api):
		typ := api.Code
		if typ == "" {
			// Not lockd's answer (a proxy's, say): the status is all
			// there is, as OpenTelemetry's HTTP conventions say.
			typ = strconv.Itoa(api.Status)
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(typ))
		if api.Status != http.StatusConflict {
			span.SetStatus(codes.Error, typ)
		}
	case ctx.Err() != nil:
		typ := "canceled"
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			typ = "deadline_exceeded"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(typ))
	default:
		typ := transportErrorType(err)
		span.SetAttributes(semconv.ErrorTypeKey.String(typ))
		// The error's text is not recorded: a URL in it holds the name.
		span.SetStatus(codes.Error, typ)
	}
}

// transportErrorType sorts a failure without an error answer into a few
// stable words, so that error.type stays low in cardinality.
func transportErrorType(err error) string {
	var netErr net.Error
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &dnsErr):
		return "dns"
	case errors.As(err, &netErr) && netErr.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection_reset"
	case errors.As(err, &certErr), errors.As(err, &recordErr):
		return "tls"
	case errors.As(err, &syntaxErr), errors.As(err, &typeErr):
		// A 2xx answer that is not lockd's JSON: something else
		// answers on the port.
		return "invalid_response"
	}
	return semconv.ErrorTypeOther.Value.AsString()
}
