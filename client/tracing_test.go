package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-distributed-lock/go-distributed-lock/client"
	"github.com/go-distributed-lock/go-distributed-lock/internal/apitest"
	"github.com/go-distributed-lock/go-distributed-lock/internal/httpapi"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// These tests give the client its own TracerProvider (Options) and never
// set otel's global one, so they can run in parallel: the ones that rely
// on the global provider's default (TestTraceContextWithoutProvider) would
// see another test's provider otherwise.

// tracing returns an SDK TracerProvider whose spans land, as they end, in
// the returned exporter.
func tracing(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// clientOf is a client of the lockd at rawURL with its own transport.
func clientOf(t *testing.T, rawURL string, opts client.Options) *client.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	opts.HTTPClient = &http.Client{Transport: tr}
	c, err := client.New(rawURL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// traced is a lockd behind an apitest.Recorder, and a client of it whose
// spans land in exp.
type traced struct {
	url string
	rec *apitest.Recorder
	c   *client.Client
	tp  *sdktrace.TracerProvider
	exp *tracetest.InMemoryExporter
}

func startTraced(t *testing.T) traced {
	t.Helper()
	s := startService(t, httpapi.Options{})
	var tr traced
	tr.url, tr.rec = apitest.RecordFront(t, s.handler)
	tr.tp, tr.exp = tracing(t)
	tr.c = clientOf(t, tr.url, client.Options{TracerProvider: tr.tp})
	return tr
}

// traceparent is the W3C header of sc, as a propagator writes it.
func traceparent(sc trace.SpanContext) string {
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// attrs is a span's attributes by key.
func attrs(s tracetest.SpanStub) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes {
		m[kv.Key] = kv.Value
	}
	return m
}

// clientSpans are the spans the client made, in the order they ended.
func clientSpans(exp *tracetest.InMemoryExporter) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if strings.HasPrefix(s.Name, "lockd ") {
			out = append(out, s)
		}
	}
	return out
}

// checkNoSecrets fails when a span's name, attributes, status, links or
// events mention any of secrets.
func checkNoSecrets(t *testing.T, spans []tracetest.SpanStub, secrets ...string) {
	t.Helper()
	for _, s := range spans {
		text := []string{s.Name, s.Status.Description}
		for _, kv := range s.Attributes {
			text = append(text, string(kv.Key), kv.Value.Emit())
		}
		for _, l := range s.Links {
			for _, kv := range l.Attributes {
				text = append(text, string(kv.Key), kv.Value.Emit())
			}
		}
		for _, e := range s.Events {
			text = append(text, e.Name)
			for _, kv := range e.Attributes {
				text = append(text, string(kv.Key), kv.Value.Emit())
			}
		}
		for _, secret := range secrets {
			for _, x := range text {
				if strings.Contains(x, secret) {
					t.Errorf("span %q carries %q in %q", s.Name, secret, x)
				}
			}
		}
	}
}

func TestTraceContextReachesLockd(t *testing.T) {
	t.Parallel()
	tr := startTraced(t)
	c, rec, tp, exp := tr.c, tr.rec, tr.tp, tr.exp
	u, _ := url.Parse(tr.url)
	port, _ := strconv.Atoi(u.Port())

	const name, owner = "traced-secret-name", "traced-secret-owner"
	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	l, err := c.Acquire(ctx, name, client.AcquireOptions{TTL: 10 * time.Second, Owner: owner})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Extend(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(ctx, "traced-", 0, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire(ctx, name, client.AcquireOptions{Owner: owner}); !errors.Is(err, client.ErrLocked) {
		t.Fatalf("second acquire: %v, want ErrLocked", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	caller.End()

	spans, reqs := clientSpans(exp), rec.All()
	want := []struct {
		name, method string
		status       int
		errType      string
	}{
		{"lockd acquire", "POST", 200, ""},
		{"lockd extend", "POST", 200, ""},
		{"lockd inspect", "GET", 200, ""},
		{"lockd check", "POST", 200, ""},
		{"lockd list", "GET", 200, ""},
		{"lockd acquire", "POST", 409, "locked"},
		{"lockd release", "POST", 204, ""},
	}
	if len(spans) != len(want) || len(reqs) != len(want) {
		t.Fatalf("%d client spans and %d requests, want %d of each: %+v", len(spans), len(reqs), len(want), spans)
	}
	for i, w := range want {
		sp, req := spans[i], reqs[i]
		if sp.Name != w.name || sp.SpanKind != trace.SpanKindClient {
			t.Errorf("span %d: %q kind %v, want %q kind client", i, sp.Name, sp.SpanKind, w.name)
		}
		// The caller's trace goes on, through the client span, into lockd.
		if sp.Parent.SpanID() != caller.SpanContext().SpanID() || sp.SpanContext.TraceID() != caller.SpanContext().TraceID() {
			t.Errorf("%s: parent %v, want the caller's span %v", w.name, sp.Parent, caller.SpanContext())
		}
		if got, want := req.Traceparent, traceparent(sp.SpanContext); got != want {
			t.Errorf("%s %s reached lockd with traceparent %q, want %q (the client span's)", req.Method, req.Path, got, want)
		}
		a := attrs(sp)
		if got := a["http.request.method"].AsString(); got != w.method {
			t.Errorf("%s: http.request.method %q, want %q", w.name, got, w.method)
		}
		if got := a["server.address"].AsString(); got != u.Hostname() {
			t.Errorf("%s: server.address %q, want %q", w.name, got, u.Hostname())
		}
		if got := a["server.port"].AsInt64(); got != int64(port) {
			t.Errorf("%s: server.port %d, want %d", w.name, got, port)
		}
		if got := a["http.response.status_code"].AsInt64(); got != int64(w.status) {
			t.Errorf("%s: http.response.status_code %d, want %d", w.name, got, w.status)
		}
		if got := a["error.type"].AsString(); got != w.errType {
			t.Errorf("%s: error.type %q, want %q", w.name, got, w.errType)
		}
		// A held lock is an answer, not a failure.
		if sp.Status.Code != codes.Unset {
			t.Errorf("%s: status %v, want unset", w.name, sp.Status)
		}
	}
	checkNoSecrets(t, exp.GetSpans(), name, owner, l.Token())
}

func TestTraceContextWithoutProvider(t *testing.T) {
	t.Parallel()
	s := startService(t, httpapi.Options{})
	front, rec := apitest.RecordFront(t, s.handler)
	c := clientOf(t, front, client.Options{}) // otel's global provider, never set here

	// A caller traced by something else (a span from its own SDK, or one
	// that came in over the wire): its context alone must reach lockd.
	ts, err := trace.ParseTraceState("congo=t61rcWkgMzE")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
		SpanID:     trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
		TraceFlags: trace.FlagsSampled,
		TraceState: ts,
		Remote:     true,
	})
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), sc)
	l, err := c.Acquire(ctx, "untraced-client", client.AcquireOptions{TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l.KeepAlive(ctx, client.KeepAliveOptions{})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n := len(rec.All()); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no renewal within 5s")
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(context.Background(), "untraced-client"); err != nil {
		t.Fatal(err)
	}

	reqs := rec.All()
	const want = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for i, req := range reqs {
		switch {
		case strings.HasSuffix(req.Path, "/extend"):
			// A renewal is not part of the caller's trace, and with no
			// provider there is no trace of its own to send.
			if req.Traceparent != "" {
				t.Errorf("renewal %d reached lockd with traceparent %q, want none", i, req.Traceparent)
			}
		case req.Method == http.MethodGet:
			if req.Traceparent != "" {
				t.Errorf("GET without a caller's trace reached lockd with traceparent %q, want none", req.Traceparent)
			}
		default:
			if req.Traceparent != want || req.Tracestate != "congo=t61rcWkgMzE" {
				t.Errorf("%s %s reached lockd with traceparent %q tracestate %q, want the caller's %q and its tracestate", req.Method, req.Path, req.Traceparent, req.Tracestate, want)
			}
		}
	}
	if p := reqs[len(reqs)-2].Path; !strings.HasSuffix(p, "/release") {
		t.Errorf("second to last request %s, want the release", p)
	}
}

func TestTraceRenewalsLinkToCaller(t *testing.T) {
	t.Parallel()
	tr := startTraced(t)
	c, rec, tp, exp := tr.c, tr.rec, tr.tp, tr.exp

	ctx, caller := tp.Tracer("test").Start(context.Background(), "caller")
	l, err := c.Acquire(ctx, "renewed", client.AcquireOptions{TTL: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l.KeepAlive(ctx, client.KeepAliveOptions{})
	var renewal tracetest.SpanStub
	for deadline := time.Now().Add(5 * time.Second); renewal.Name == ""; time.Sleep(10 * time.Millisecond) {
		for _, sp := range clientSpans(exp) {
			if sp.Name == "lockd extend" {
				renewal = sp
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no renewal span within 5s")
		}
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	caller.End()

	if renewal.Parent.IsValid() || renewal.SpanContext.TraceID() == caller.SpanContext().TraceID() {
		t.Errorf("renewal's parent %v in trace %v, want a root of its own", renewal.Parent, renewal.SpanContext.TraceID())
	}
	if len(renewal.Links) != 1 || !renewal.Links[0].SpanContext.Equal(caller.SpanContext()) {
		t.Errorf("renewal's links %+v, want one to the caller's span %v", renewal.Links, caller.SpanContext())
	}
	var found bool
	for _, req := range rec.All() {
		if strings.HasSuffix(req.Path, "/extend") && req.Traceparent == traceparent(renewal.SpanContext) {
			found = true
		}
	}
	if !found {
		t.Errorf("no extend reached lockd with the renewal span's traceparent %q: %+v", traceparent(renewal.SpanContext), rec.All())
	}
	// The release is the caller's again.
	spans := clientSpans(exp)
	if last := spans[len(spans)-1]; last.Name != "lockd release" || last.Parent.SpanID() != caller.SpanContext().SpanID() {
		t.Errorf("last client span %q with parent %v, want the release under the caller's span", last.Name, last.Parent)
	}
}

func TestTraceErrorTypes(t *testing.T) {
	t.Parallel()
	s := startService(t, httpapi.Options{})
	free, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	answer := func(status int, body string) string {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}))
		t.Cleanup(hs.Close)
		return hs.URL
	}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		what    string
		url     string
		ctx     context.Context
		ttl     time.Duration
		status  int64 // 0: none came
		errType string
		code    codes.Code
	}{
		{"invalid ttl", s.URL, context.Background(), time.Millisecond, 400, "invalid_argument", codes.Error},
		{"lockd's 503", answer(503, `{"error":{"code":"unavailable","message":"redis down"}}`), context.Background(), 0, 503, "unavailable", codes.Error},
		{"a proxy's 502", answer(502, `<html>bad gateway</html>`), context.Background(), 0, 502, "502", codes.Error},
		{"not lockd's 200", answer(200, `<html>hello</html>`), context.Background(), 0, 200, "invalid_response", codes.Error},
		{"nothing listening", "http://127.0.0.1:" + strconv.Itoa(free), context.Background(), 0, 0, "connection_refused", codes.Error},
		{"caller gave up", s.URL, canceled, 0, 0, "canceled", codes.Unset},
	} {
		tp, exp := tracing(t)
		c := clientOf(t, tc.url, client.Options{TracerProvider: tp})
		if _, err := c.Acquire(tc.ctx, "err-secret-name", client.AcquireOptions{TTL: tc.ttl}); err == nil {
			t.Errorf("%s: acquire succeeded", tc.what)
			continue
		}
		spans := clientSpans(exp)
		if len(spans) != 1 {
			t.Errorf("%s: %d client spans, want 1", tc.what, len(spans))
			continue
		}
		a := attrs(spans[0])
		if got := a["error.type"].AsString(); got != tc.errType {
			t.Errorf("%s: error.type %q, want %q", tc.what, got, tc.errType)
		}
		if got := a["http.response.status_code"].AsInt64(); got != tc.status {
			t.Errorf("%s: http.response.status_code %d, want %d", tc.what, got, tc.status)
		}
		if got := spans[0].Status.Code; got != tc.code {
			t.Errorf("%s: status %v, want %v", tc.what, got, tc.code)
		}
		checkNoSecrets(t, spans, "err-secret-name")
	}
}
