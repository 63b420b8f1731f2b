package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// receivedSpan is one span as an OTLP/HTTP receiver got it, with its
// resource's attributes.
type receivedSpan struct {
	traceID, spanID, parentID string
	name                      string
	kind                      tracepb.Span_SpanKind
	attrs, resource           map[string]string
}

// otlpReceiver is an OTLP/HTTP trace receiver on a loopback port, as a
// collector would run: it decodes each export (protobuf, gzipped or not)
// and keeps the spans. It counts the connections made to it.
type otlpReceiver struct {
	url   string
	conns atomic.Int64
	mu    sync.Mutex
	spans []receivedSpan
}

func startReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(r.export))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func (r *otlpReceiver) export(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST /v1/traces, application/x-protobuf", http.StatusBadRequest)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &msg)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	for _, rs := range msg.ResourceSpans {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				r.spans = append(r.spans, receivedSpan{
					traceID: hex.EncodeToString(s.TraceId), spanID: hex.EncodeToString(s.SpanId),
					parentID: hex.EncodeToString(s.ParentSpanId), name: s.Name, kind: s.Kind,
					attrs: attrMap(s.Attributes), resource: res,
				})
			}
		}
	}
	r.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (r *otlpReceiver) received() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]receivedSpan(nil), r.spans...)
}

// attrMap flattens attributes to strings, which is all the checks need.
func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		switch v := kv.GetValue().Value.(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.Key] = v.StringValue
		case *commonpb.AnyValue_IntValue:
			m[kv.Key] = strconv.FormatInt(v.IntValue, 10)
		case *commonpb.AnyValue_DoubleValue:
			m[kv.Key] = strconv.FormatFloat(v.DoubleValue, 'f', -1, 64)
		case *commonpb.AnyValue_BoolValue:
			m[kv.Key] = strconv.FormatBool(v.BoolValue)
		default:
			b, _ := json.Marshal(v)
			m[kv.Key] = string(b)
		}
	}
	return m
}

// callerSpan starts a span the way a calling service's own tracing would,
// and returns the headers its request to lockd carries.
func callerSpan(tp trace.TracerProvider, name string) (trace.SpanContext, http.Header, func()) {
	ctx, span := tp.Tracer("caller").Start(context.Background(), name)
	h := http.Header{"Content-Type": {"application/json"}}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(h))
	return span.SpanContext(), h, func() { span.End() }
}

// TestTracesAcrossReplicas: a holder takes a lock on one replica, a waiter
// waits for it on the other, the holder releases, the waiter gets it and
// releases. Both replicas export to one OTLP/HTTP receiver; each caller's
// trace continues into lockd (server span as the caller's child), the
// waiter's trace shows its wait as a child span with the time waited, and
// the Redis commands as client spans under the request. No span names a
// token or an owner; the lock name appears only on the replica that was
// told to record names. Background work makes no spans.
func TestTracesAcrossReplicas(t *testing.T) {
	t.Parallel()
	_, _, env := dotEnvRedis(t)
	recv := startReceiver(t)
	traced := with(env, "OTEL_EXPORTER_OTLP_ENDPOINT", recv.url)
	a := startReady(t, with(traced, "REPLICA_NAME", "replica-a"))
	b := startReady(t, with(traced, "REPLICA_NAME", "replica-b", "OTEL_RECORD_LOCK_NAMES", "true"))
	caller := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))

	const name, owner = "traced-order-42", "worker-secret-owner"
	holderCtx, holderHdr, endHolder := callerSpan(caller, "holder")
	waiterCtx, waiterHdr, endWaiter := callerSpan(caller, "waiter")
	r, _ := send(t, "POST", a.url+"/v1/locks/"+name+"/acquire", holderHdr, `{"ttl":"10s","owner":"`+owner+`"}`)
	if r.status != http.StatusOK {
		t.Fatalf("holder's acquire: %d %s", r.status, r.body)
	}
	holderToken := tokenOf(t, r.body)
	waited := make(chan reply, 1)
	go func() {
		r, _ := send(t, "POST", b.url+"/v1/locks/"+name+"/acquire", waiterHdr, `{"ttl":"10s","wait":"10s","owner":"`+owner+`"}`)
		waited <- r
	}()
	waitUntil(t, 5*time.Second, "the waiter waits on replica b", func() bool {
		return metric(get(t, b.url+"/metrics").body, "lockd_waiters") == 1
	})
	const held = 150 * time.Millisecond
	time.Sleep(held)
	if r, _ := send(t, "POST", a.url+"/v1/locks/"+name+"/release", holderHdr, tokenJSON(holderToken)); r.status != http.StatusNoContent {
		t.Fatalf("holder's release: %d %s", r.status, r.body)
	}
	r = <-waited
	if r.status != http.StatusOK {
		t.Fatalf("waiter's acquire: %d %s", r.status, r.body)
	}
	waiterToken := tokenOf(t, r.body)
	if r, _ := send(t, "POST", b.url+"/v1/locks/"+name+"/release", waiterHdr, tokenJSON(waiterToken)); r.status != http.StatusNoContent {
		t.Fatalf("waiter's release: %d %s", r.status, r.body)
	}
	endHolder()
	endWaiter()
	// Stopping flushes each replica's batch of spans.
	for _, rep := range []*replica{a, b} {
		if err := rep.stop(); err != nil {
			t.Fatal(err)
		}
	}

	spans := recv.received()
	defer func() {
		if !t.Failed() {
			return
		}
		for _, s := range spans {
			t.Logf("%s %s parent %s %q %v on %s %v", s.traceID[:8], s.spanID, s.parentID, s.name, s.kind, s.resource["service.instance.id"], s.attrs)
		}
	}()
	byID := map[string]receivedSpan{}
	for _, s := range spans {
		byID[s.spanID] = s
	}
	holderTrace, waiterTrace := holderCtx.TraceID().String(), waiterCtx.TraceID().String()
	for _, s := range spans {
		if s.traceID != holderTrace && s.traceID != waiterTrace {
			t.Errorf("span %q (parent %q) is in no caller's trace: background work must make no spans", s.name, s.parentID)
		}
		if s.resource["service.name"] != "lockd" {
			t.Errorf("span %q: service.name %q, want lockd", s.name, s.resource["service.name"])
		}
		all := s.name
		for k, v := range s.attrs {
			all += " " + k + "=" + v
		}
		for _, secret := range []string{holderToken, waiterToken, owner} {
			if strings.Contains(all, secret) {
				t.Errorf("span %q carries a token or owner: %s", s.name, all)
			}
		}
		if _, ok := s.attrs["db.statement"]; ok {
			t.Errorf("span %q records a Redis command with its arguments", s.name)
		}
		named := strings.Contains(all, name)
		if replica := s.resource["service.instance.id"]; named != (replica == "replica-b" && s.kind == tracepb.Span_SPAN_KIND_SERVER) {
			t.Errorf("span %q on %s: names the lock %v; only replica-b's server spans may (OTEL_RECORD_LOCK_NAMES): %s", s.name, replica, named, all)
		}
	}

	server := func(trace, parent, name, replica string) receivedSpan {
		t.Helper()
		for _, s := range spans {
			if s.traceID == trace && s.parentID == parent && s.name == name {
				if s.kind != tracepb.Span_SPAN_KIND_SERVER || s.resource["service.instance.id"] != replica ||
					s.attrs["http.route"] != strings.TrimPrefix(name, "POST ") || s.attrs["http.response.status_code"] == "" {
					t.Errorf("span %q: kind %v, replica %q, attributes %v", name, s.kind, s.resource["service.instance.id"], s.attrs)
				}
				return s
			}
		}
		t.Fatalf("no span %q under the caller's span %s in trace %s; got %v", name, parent, trace, spans)
		return receivedSpan{}
	}
	const acquire, release = "POST /v1/locks/:name/acquire", "POST /v1/locks/:name/release"
	holderSpan := holderCtx.SpanID().String()
	server(holderTrace, holderSpan, acquire, "replica-a")
	server(holderTrace, holderSpan, release, "replica-a")
	server(waiterTrace, waiterCtx.SpanID().String(), release, "replica-b")
	waitReq := server(waiterTrace, waiterCtx.SpanID().String(), acquire, "replica-b")
	if waitReq.attrs["lock.name"] != name || !strings.HasPrefix(waitReq.attrs["url.path"], "/v1/locks/"+name) {
		t.Errorf("replica-b records lock names, but its acquire span has %v", waitReq.attrs)
	}

	// The wait: a child of the waiter's request, as long as the hold.
	var wait receivedSpan
	for _, s := range spans {
		if s.name == "lock.wait" {
			if wait.name != "" {
				t.Errorf("two wait spans")
			}
			wait = s
		}
	}
	if wait.parentID != waitReq.spanID || wait.attrs["lock.result"] != "granted" {
		t.Fatalf("wait span %+v, want a child of the waiter's acquire (%s) that ended granted", wait, waitReq.spanID)
	}
	if ms, err := strconv.ParseFloat(wait.attrs["lock.waited_ms"], 64); err != nil || ms < float64(held.Milliseconds()) {
		t.Errorf("lock.waited_ms = %s, want at least the %v the holder kept it after the waiter began", wait.attrs["lock.waited_ms"], held)
	}

	// Redis commands: client spans under the request or its wait, named
	// by the command.
	under := map[string]int{}
	for _, s := range spans {
		if s.attrs["db.system"] != "redis" {
			continue
		}
		p := byID[s.parentID]
		if s.kind != tracepb.Span_SPAN_KIND_CLIENT || (p.kind != tracepb.Span_SPAN_KIND_SERVER && p.name != "lock.wait") {
			t.Errorf("Redis span %q: kind %v under %q", s.name, s.kind, p.name)
		}
		under[p.name]++
	}
	if under[acquire] == 0 || under[release] == 0 || under["lock.wait"] == 0 {
		t.Errorf("Redis spans under each parent: %v; want some under the acquires, the releases and the wait", under)
	}
}

func tokenOf(t *testing.T, body string) string {
	t.Helper()
	var l struct{ Token string }
	if err := json.Unmarshal([]byte(body), &l); err != nil || l.Token == "" {
		t.Fatalf("no token in %s", body)
	}
	return l.Token
}

// TestTracingOffStartsNothing: with no OTEL_* variable, or with an
// endpoint but OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true, lockd
// starts no exporter (no SDK goroutine runs) and never connects to the
// endpoint, even for a request that carries a caller's trace context. The
// enabled row shows both checks can see an exporter. goleak (TestMain)
// checks that nothing outlives the replicas. Not parallel: the goroutine
// check sees the whole process, and parallel tests wait for this one.
func TestTracingOffStartsNothing(t *testing.T) {
	_, _, env := dotEnvRedis(t)
	caller := sdktrace.NewTracerProvider(sdktrace.WithSyncer(tracetest.NewInMemoryExporter()))
	for _, tt := range []struct {
		name string
		env  []string
		on   bool
	}{
		{"nothing set", nil, false},
		{"exporter none", []string{"OTEL_TRACES_EXPORTER", "none"}, false},
		{"SDK disabled", []string{"OTEL_SDK_DISABLED", "true"}, false},
		{"on", nil, true},
	} {
		recv := startReceiver(t)
		e := with(env, tt.env...)
		if tt.name != "nothing set" {
			e["OTEL_EXPORTER_OTLP_ENDPOINT"] = recv.url
		}
		rep := startReady(t, e)
		_, hdr, end := callerSpan(caller, tt.name)
		r, _ := send(t, "POST", rep.url+"/v1/locks/off-"+strings.ReplaceAll(tt.name, " ", "-")+"/acquire", hdr, `{"ttl":"10s"}`)
		end()
		if r.status != http.StatusOK {
			t.Fatalf("%s: acquire: %d %s", tt.name, r.status, r.body)
		}
		if got := sdkRunning(); got != tt.on {
			t.Errorf("%s: an OpenTelemetry SDK goroutine runs: %v, want %v", tt.name, got, tt.on)
		}
		if err := rep.stop(); err != nil {
			t.Fatal(err)
		}
		if got := recv.conns.Load() > 0; got != tt.on {
			t.Errorf("%s: connections to the endpoint: %d, want some: %v", tt.name, recv.conns.Load(), tt.on)
		}
	}
}

// sdkRunning reports whether any goroutine runs OpenTelemetry SDK code (the
// batch span processor's loop, an exporter).
func sdkRunning() bool {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	return strings.Contains(buf.String(), "go.opentelemetry.io/otel/sdk/trace.")
}

// TestMalformedTraceContext: a request whose trace headers are garbage, or
// far too long, is served as usual and starts a trace of its own.
func TestMalformedTraceContext(t *testing.T) {
	t.Parallel()
	_, _, env := dotEnvRedis(t)
	recv := startReceiver(t)
	rep := startReady(t, with(env, "OTEL_EXPORTER_OTLP_ENDPOINT", recv.url))
	bad := []http.Header{
		{"Traceparent": {"00-zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz-zzzzzzzzzzzzzzzz-01"}},
		{"Traceparent": {"00-00000000000000000000000000000000-0000000000000000-01"}}, // all-zero ids are invalid
		{"Traceparent": {"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}, // version ff is forbidden
		{"Traceparent": {strings.Repeat("0", 8000)}, "Tracestate": {strings.Repeat("k=v,", 2000)}},
	}
	for i, h := range bad {
		h.Set("Content-Type", "application/json")
		r, _ := send(t, "POST", rep.url+"/v1/locks/garbage-trace-"+strconv.Itoa(i)+"/acquire", h, `{"ttl":"10s"}`)
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if err := rep.stop(); err != nil {
		t.Fatal(err)
	}
	roots := 0
	for _, s := range recv.received() {
		if s.kind == tracepb.Span_SPAN_KIND_SERVER {
			if s.parentID != "" {
				t.Errorf("span %q continues a trace from garbage headers: parent %s", s.name, s.parentID)
			}
			roots++
		}
	}
	if roots != len(bad) {
		t.Errorf("%d server spans, want one root per request (%d)", roots, len(bad))
	}
}

// TestHostileRequestsKeepEveryonesSpans: strings a client sends reach
// spans as valid UTF-8 and at most 256 bytes, and an invented method does
// not name a span. One invalid byte in a span's attribute would fail the
// export of its whole batch (OTLP strings must be UTF-8), so a hostile
// client could otherwise hide every other request's spans.
func TestHostileRequestsKeepEveryonesSpans(t *testing.T) {
	t.Parallel()
	_, _, env := dotEnvRedis(t)
	recv := startReceiver(t)
	rep := startReady(t, with(env, "OTEL_EXPORTER_OTLP_ENDPOINT", recv.url, "OTEL_RECORD_LOCK_NAMES", "true"))
	json := http.Header{"Content-Type": {"application/json"}}
	hostile := []struct {
		method, path string
		header       http.Header
	}{
		{"POST", "/v1/locks/ua/acquire", http.Header{"User-Agent": {"bad\xff\xfeagent"}, "Content-Type": {"application/json"}}},
		{"POST", "/v1/locks/ua-long/acquire", http.Header{"User-Agent": {strings.Repeat("é", 4000)}, "Content-Type": {"application/json"}}},
		{"POST", "/v1/locks/%FF%FE/acquire", json},
		{"GET", "/v1/locks?cursor=%FF" + strings.Repeat("x", 3000), json},
		{"BREW", "/v1/locks/coffee/acquire", json},
	}
	for _, h := range hostile {
		send(t, h.method, rep.url+h.path, h.header, `{"ttl":"5s"}`)
	}
	if r, _ := send(t, "POST", rep.url+"/v1/locks/innocent/acquire", json, `{"ttl":"5s"}`); r.status != http.StatusOK {
		t.Fatalf("innocent acquire: %d %s", r.status, r.body)
	}
	if err := rep.stop(); err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, s := range recv.received() {
		if s.kind != tracepb.Span_SPAN_KIND_SERVER {
			continue
		}
		names[s.name]++
		for k, v := range s.attrs {
			if !utf8.ValidString(v) || len(v) > 256+len("…") {
				t.Errorf("span %q: %s is %d bytes, valid UTF-8 %v", s.name, k, len(v), utf8.ValidString(v))
			}
		}
	}
	if got := names["POST /v1/locks/:name/acquire"]; got != 4 { // ua, ua-long, %FF%FE, innocent
		t.Errorf("%d acquire spans arrived, want 4 (the batch with the hostile ones must export): %v", got, names)
	}
	if names["_OTHER"] != 1 || names["BREW"] != 0 {
		t.Errorf("span names %v: an invented method must be _OTHER", names)
	}
}
