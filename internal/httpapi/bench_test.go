package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// benchClient skips the OpenAPI check, which would cost more than the
// request, and keeps enough idle connections for RunParallel.
func benchClient(b *testing.B) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 256
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func benchPost(b *testing.B, c *http.Client, url, body string, want int) []byte {
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		b.Error(err)
		return nil
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		b.Errorf("POST %s: %d %s", url, resp.StatusCode, out)
	}
	return out
}

func benchToken(b *testing.B, body []byte) string {
	var l leaseJSON
	if err := json.Unmarshal(body, &l); err != nil {
		b.Error(err)
	}
	return l.Token
}

// BenchmarkAcquireRelease: one /v1 acquire and release per op, distinct
// names, over real HTTP and a real Redis, at GOMAXPROCS×-cpu parallelism.
//
//	go test -run '^$' -bench AcquireRelease -cpu 1,16 ./internal/httpapi
func BenchmarkAcquireRelease(b *testing.B) {
	benchAcquireRelease(b, clusterOptions{})
}

// BenchmarkAcquireReleaseTraced: the same with tracing on, every request
// sampled: server spans, Redis command spans, batched and sent over
// OTLP/HTTP to a collector (a local one that reads and drops each batch),
// as OTEL_EXPORTER_OTLP_ENDPOINT sets it up. Its difference to
// BenchmarkAcquireRelease is what tracing costs.
//
//	go test -run '^$' -bench 'AcquireRelease(Traced)?$' -cpu 1,16 ./internal/httpapi
func BenchmarkAcquireReleaseTraced(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	b.Cleanup(collector.Close)
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpointURL(collector.URL+"/v1/traces"))
	if err != nil {
		b.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp))
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	benchAcquireRelease(b, clusterOptions{Options: Options{TracerProvider: tp}, TraceRedis: true})
}

func benchAcquireRelease(b *testing.B, co clusterOptions) {
	c := startClusterWith(b, 1, co)
	r := c.replicas[0]
	hc := benchClient(b)
	var n atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			name := fmt.Sprintf("bench.%d", n.Add(1))
			tok := benchToken(b, benchPost(b, hc, r.url+"/v1/locks/"+name+"/acquire", `{"ttl":"10s"}`, http.StatusOK))
			benchPost(b, hc, r.url+"/v1/locks/"+name+"/release", tokenBody(tok), http.StatusNoContent)
		}
	})
}

// BenchmarkHandoffAcrossReplicas: a holder on replica A releases while a
// waiter on replica B waits; the gap is from A's release answer to B's
// grant answer (0 when B's grant came first). Reported as percentiles.
//
//	go test -run '^$' -bench Handoff -benchtime 200x ./internal/httpapi
func BenchmarkHandoffAcrossReplicas(b *testing.B) {
	c := startCluster(b, 2, Options{})
	a, w := c.replicas[0], c.replicas[1]
	hc := benchClient(b)
	gaps := make([]time.Duration, 0, b.N)
	tok := benchToken(b, benchPost(b, hc, a.url+"/v1/locks/hot/acquire", `{"ttl":"30s"}`, http.StatusOK))
	for b.Loop() {
		granted := make(chan time.Time, 1)
		var next string
		go func() {
			body := benchPost(b, hc, w.url+"/v1/locks/hot/acquire", `{"ttl":"30s","wait":"10s"}`, http.StatusOK)
			at := time.Now()
			next = benchToken(b, body)
			granted <- at
		}()
		for w.locks.Waiting() == 0 {
			time.Sleep(50 * time.Microsecond)
		}
		// Registered; let its first attempt be refused, so it is really
		// waiting when the release comes.
		time.Sleep(2 * time.Millisecond)
		benchPost(b, hc, a.url+"/v1/locks/hot/release", tokenBody(tok), http.StatusNoContent)
		released := time.Now()
		gaps = append(gaps, max(0, (<-granted).Sub(released)))
		tok = next
		a, w = w, a // the new holder's replica releases next time
	}
	reportPercentiles(b, gaps, "handoff")
}

// BenchmarkTakeoverAtExpiry: a holder vanishes; the gap is from its lease's
// end (its grant answer plus the TTL, a late bound) to the waiter's grant.
//
//	go test -run '^$' -bench Takeover -benchtime 20x ./internal/httpapi
func BenchmarkTakeoverAtExpiry(b *testing.B) {
	c := startCluster(b, 2, Options{})
	a, w := c.replicas[0], c.replicas[1]
	hc := benchClient(b)
	const ttl = 200 * time.Millisecond
	gaps := make([]time.Duration, 0, b.N)
	i := 0
	for b.Loop() {
		i++
		name := fmt.Sprintf("abandoned.%d", i)
		benchPost(b, hc, a.url+"/v1/locks/"+name+"/acquire", `{"ttl":"200ms"}`, http.StatusOK)
		ends := time.Now().Add(ttl)
		benchPost(b, hc, w.url+"/v1/locks/"+name+"/acquire", `{"ttl":"10s","wait":"5s"}`, http.StatusOK)
		gaps = append(gaps, max(0, time.Since(ends)))
	}
	reportPercentiles(b, gaps, "takeover")
}

func reportPercentiles(b *testing.B, d []time.Duration, what string) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	ms := func(p float64) float64 { return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.5), "ms-"+what+"-p50")
	b.ReportMetric(ms(0.99), "ms-"+what+"-p99")
	b.ReportMetric(0, "ns/op") // the loop's own time is not the figure
}
