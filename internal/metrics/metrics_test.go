package metrics

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// samples returns how many observations the histogram series name{labels}
// holds, read back through the registry as a scrape would.
func samples(t *testing.T, m *Metrics, name string, labels map[string]string) uint64 {
	t.Helper()
	return series(t, m, name, labels).GetHistogram().GetSampleCount()
}

// series returns the first series of name whose every label has the value
// labels gives it, read back through the registry as a scrape would, or
// nil (whose getters read as zero).
func series(t *testing.T, m *Metrics, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return s
		}
	}
	return nil
}

// labelValues returns every label value of every lockd_ series.
func labelValues(t *testing.T, m *Metrics) []string {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "lockd_") {
			continue
		}
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				vals = append(vals, lp.GetValue())
			}
		}
	}
	return vals
}

func TestResultsStartAtZero(t *testing.T) {
	m := New()
	tests := []struct {
		name    string
		c       resultCounter
		results []string
	}{
		{"acquisitions", m.acquisitions, acquireResults},
		{"releases", m.releases, releaseResults},
		{"extensions", m.extensions, extendResults},
		{"fence checks", m.fenceChecks, fenceResults},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, want := testutil.CollectAndCount(tt.c.vec), len(kinds)*(len(tt.results)+1); got != want {
				t.Errorf("series = %d, want %d (each kind with each result and %q)", got, want, other)
			}
			for _, k := range kinds {
				for _, r := range append(tt.results, other) {
					if got := testutil.ToFloat64(tt.c.vec.WithLabelValues(k, r)); got != 0 {
						t.Errorf("%s %s = %v, want 0", k, r, got)
					}
				}
			}
		})
	}
}

func TestEvents(t *testing.T) {
	tests := []struct {
		name   string
		record func(*Metrics)
		vec    func(*Metrics) *prometheus.CounterVec
		result string // the label that must have moved (with kind, below)
		wait   uint64 // observations expected in the wait histogram
		hold   uint64 // and in the hold histogram
	}{
		{"acquire granted", func(m *Metrics) { m.Acquired("lock", "granted", 3*time.Millisecond) }, acq, "granted", 1, 0},
		{"acquire locked after a wait", func(m *Metrics) { m.Acquired("lock", "locked", 2*time.Second) }, acq, "locked", 1, 0},
		{"acquire canceled", func(m *Metrics) { m.Acquired("lock", "canceled", time.Second) }, acq, "canceled", 1, 0},
		{"acquire invalid is not timed", func(m *Metrics) { m.Acquired("lock", "invalid", time.Second) }, acq, "invalid", 0, 0},
		{"acquire unknown", func(m *Metrics) { m.Acquired("lock", "orders/42", time.Second) }, acq, other, 1, 0},
		{"release held", func(m *Metrics) { m.Released("lock", "released", time.Minute) }, rel, "released", 0, 1},
		{"release unknown hold", func(m *Metrics) { m.Released("lock", "not_holder", 0) }, rel, "not_holder", 0, 0},
		{"release unknown", func(m *Metrics) { m.Released("lock", "tok-5f2a", 0) }, rel, other, 0, 0},
		{"extend", func(m *Metrics) { m.Extended("lock", "extended") }, ext, "extended", 0, 0},
		{"extend unknown", func(m *Metrics) { m.Extended("lock", "Extended") }, ext, other, 0, 0},
		{"fence stale", func(m *Metrics) { m.FenceChecked("lock", "stale") }, fence, "stale", 0, 0},
		{"fence unknown", func(m *Metrics) { m.FenceChecked("lock", "") }, fence, other, 0, 0},
		{"semaphore permit", func(m *Metrics) { m.Acquired("semaphore", "granted", time.Millisecond) }, acq, "granted", 1, 0},
		{"unknown kind", func(m *Metrics) { m.Released("orders/42", "released", 0) }, rel, "released", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			tt.record(m)
			vec := tt.vec(m)
			kind := "lock"
			if strings.HasPrefix(tt.name, "semaphore") {
				kind = "semaphore"
			}
			if got := testutil.ToFloat64(vec.WithLabelValues(kind, tt.result)); got != 1 {
				t.Errorf("%s %s = %v, want 1", kind, tt.result, got)
			}
			// Only the pre-initialised series exist: nothing new was made
			// from the caller's string.
			if got, want := testutil.CollectAndCount(vec), len(kinds)*(len(m.resultSet(vec))+1); got != want {
				t.Errorf("series = %d, want %d", got, want)
			}
			if got := samples(t, m, "lockd_wait_duration_seconds", nil); got != tt.wait {
				t.Errorf("wait observations = %d, want %d", got, tt.wait)
			}
			if got := samples(t, m, "lockd_hold_duration_seconds", nil); got != tt.hold {
				t.Errorf("hold observations = %d, want %d", got, tt.hold)
			}
			for _, v := range labelValues(t, m) {
				if strings.Contains(v, "orders") || strings.Contains(v, "tok-") {
					t.Errorf("label value %q carries a caller's string", v)
				}
			}
		})
	}
}

func acq(m *Metrics) *prometheus.CounterVec   { return m.acquisitions.vec }
func rel(m *Metrics) *prometheus.CounterVec   { return m.releases.vec }
func ext(m *Metrics) *prometheus.CounterVec   { return m.extensions.vec }
func fence(m *Metrics) *prometheus.CounterVec { return m.fenceChecks.vec }

// resultSet finds the documented results behind vec.
func (m *Metrics) resultSet(vec *prometheus.CounterVec) []string {
	for _, c := range []resultCounter{m.acquisitions, m.releases, m.extensions, m.fenceChecks} {
		if c.vec == vec {
			return c.results
		}
	}
	return nil
}

func TestWaiting(t *testing.T) {
	m := New()
	m.Waiting(1)
	m.Waiting(1)
	m.Waiting(-1)
	if got := testutil.ToFloat64(m.waiters); got != 1 {
		t.Errorf("lockd_waiters = %v, want 1", got)
	}
}

func TestRedisHook(t *testing.T) {
	s := redistest.Start(t, redistest.Options{})
	m := New()
	c := s.Client(t, 0)
	c.AddHook(m.RedisHook("0"))
	ctx := context.Background()
	node0 := map[string]string{"node": "0"}
	errs := m.redisErrors.WithLabelValues("0")

	// The first command and the first pipeline each dial and run go-redis's
	// handshake (HELLO, CLIENT SETINFO ...) through the hooks too;
	// redistest's redis-server may be older than some of it, and those
	// refusals must not count.
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pipelined(ctx, func(p redis.Pipeliner) error { p.Ping(ctx); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(errs); got != 0 {
		t.Fatalf("errors after connecting = %v, want 0", got)
	}

	// afterMiss runs a pipeline of a GET that misses and what add queues.
	// The pipeline's error is its first command's, redis.Nil, whatever
	// follows, so only the hook's look at each command can tell them apart.
	afterMiss := func(add func(redis.Pipeliner)) func() error {
		return func() error {
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
				p.Get(ctx, "metrics:missing")
				add(p)
				return nil
			})
			if err != redis.Nil {
				return fmt.Errorf("pipeline: %v, want redis.Nil", err)
			}
			return nil
		}
	}

	// Each step runs one command or one pipeline, so each adds exactly one
	// observation; wantErrs is the error count after it.
	steps := []struct {
		name     string
		run      func() error
		wantErrs float64
	}{
		{"GET of a missing key is redis.Nil, not an error", func() error {
			if err := c.Get(ctx, "metrics:missing").Err(); err != redis.Nil {
				return fmt.Errorf("GET: %v, want redis.Nil", err)
			}
			return nil
		}, 0},
		{"SET works", func() error { return c.Set(ctx, "metrics:word", "x", 0).Err() }, 0},
		{"INCR of a word fails", func() error {
			if err := c.Incr(ctx, "metrics:word").Err(); err == nil {
				return fmt.Errorf("INCR of a non-integer: no error")
			}
			return nil
		}, 1},
		{"pipeline of misses only", afterMiss(func(p redis.Pipeliner) { p.Get(ctx, "metrics:missing2") }), 1},
		{"pipeline with a failure behind a miss", afterMiss(func(p redis.Pipeliner) { p.Incr(ctx, "metrics:word") }), 2},
		{"EVALSHA of an unloaded script is NOSCRIPT, not an error", func() error {
			err := c.EvalSha(ctx, "0000000000000000000000000000000000000000", nil).Err()
			if !redis.HasErrorPrefix(err, "NOSCRIPT") {
				return fmt.Errorf("EVALSHA: %v, want NOSCRIPT", err)
			}
			return nil
		}, 2},
		{"a canceled call is not an error", func() error {
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if err := c.Get(cctx, "metrics:missing").Err(); err != context.Canceled {
				return fmt.Errorf("GET with a canceled context: %v, want context.Canceled", err)
			}
			return nil
		}, 2},
	}
	for _, st := range steps {
		before := samples(t, m, "lockd_redis_command_duration_seconds", node0)
		if err := st.run(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, want := samples(t, m, "lockd_redis_command_duration_seconds", node0), before+1; got != want {
			t.Errorf("%s: observations = %d, want %d", st.name, got, want)
		}
		if got := testutil.ToFloat64(errs); got != st.wantErrs {
			t.Errorf("%s: errors = %v, want %v", st.name, got, st.wantErrs)
		}
	}
}

func TestRedisHookDialError(t *testing.T) {
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	m := New()
	// Nothing listens on port, so the dial is refused.
	const attempts = 2
	c := redis.NewClient(&redis.Options{
		Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1, DialerRetries: attempts,
	})
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(m.RedisHook("1"))
	if err := c.Ping(context.Background()).Err(); err == nil {
		t.Fatal("PING of a closed port: no error")
	}
	// Each refused dial attempt counts; the command that gave up after
	// them does not count again.
	if got := testutil.ToFloat64(m.redisErrors.WithLabelValues("1")); got != attempts {
		t.Errorf("errors{node=1} = %v, want %d", got, attempts)
	}
	if got := testutil.ToFloat64(m.redisErrors.WithLabelValues("0")); got != 0 {
		t.Errorf("errors{node=0} = %v, want 0", got)
	}
}

func TestHTTPRequest(t *testing.T) {
	m := New()
	m.HTTPRequest("/v1/locks/:name/acquire", http.MethodPost, http.StatusOK, 40*time.Millisecond)
	m.HTTPRequest("/v1/locks/:name/acquire", http.MethodPost, http.StatusConflict, 5*time.Second)
	m.HTTPRequest("", http.MethodGet, http.StatusNotFound, time.Millisecond)
	m.HTTPRequest("/livez", "BREW", 0, time.Millisecond)

	tests := []struct {
		route, method, status string
	}{
		{"/v1/locks/:name/acquire", "POST", "200"},
		{"/v1/locks/:name/acquire", "POST", "409"},
		{unmatched, "GET", "404"},
		{"/livez", other, other},
	}
	for _, tt := range tests {
		if got := testutil.ToFloat64(m.httpRequests.WithLabelValues(tt.route, tt.method, tt.status)); got != 1 {
			t.Errorf("requests{%s,%s,%s} = %v, want 1", tt.route, tt.method, tt.status, got)
		}
	}
	acquire := map[string]string{"route": "/v1/locks/:name/acquire", "method": "POST"}
	if got := samples(t, m, "lockd_http_request_duration_seconds", acquire); got != 2 {
		t.Errorf("acquire duration observations = %d, want 2", got)
	}
}

// TestRouteLabelsBounded feeds raw paths, each with a new lock name, as a
// miswired middleware would: the route label set must stop growing.
func TestRouteLabelsBounded(t *testing.T) {
	m := New()
	m.HTTPRequest("/v1/locks/:name/release", http.MethodPost, http.StatusOK, time.Millisecond)
	for i := range 1000 {
		m.HTTPRequest(fmt.Sprintf("/v1/locks/orders-%d/acquire", i), http.MethodPost, http.StatusOK, time.Millisecond)
	}
	m.HTTPRequest("/v1/locks/:name/release", http.MethodPost, http.StatusOK, time.Millisecond)

	routes := map[string]bool{}
	for _, v := range labelValues(t, m) {
		if strings.HasPrefix(v, "/") || v == other {
			routes[v] = true
		}
	}
	if got, limit := len(routes), maxRoutes+1; got > limit {
		t.Errorf("%d route labels, want at most %d", got, limit)
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues("/v1/locks/:name/release", "POST", "200")); got != 2 {
		t.Errorf("a route known before the flood: %v requests, want 2", got)
	}
	if got := testutil.ToFloat64(m.httpRequests.WithLabelValues(other, "POST", "200")); got != 1000-maxRoutes+1 {
		t.Errorf("requests past the bound: %v under %q, want %d", got, other, 1000-maxRoutes+1)
	}
}

func TestHandler(t *testing.T) {
	m := New()
	m.Acquired("lock", "granted", time.Millisecond)
	m.HTTPRequest("/v1/locks/:name/acquire", http.MethodPost, http.StatusOK, time.Millisecond)
	m.RedisHook("0")

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if got, want := resp.StatusCode, http.StatusOK; got != want {
		t.Fatalf("status = %d, want %d", got, want)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", got)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`lockd_acquisitions_total{kind="lock",result="granted"} 1`,
		`lockd_acquisitions_total{kind="semaphore",result="other"} 0`,
		`lockd_redis_errors_total{node="0"} 0`,
		"go_goroutines",
		"process_start_time_seconds",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("scrape lacks %q", want)
		}
	}

	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}
