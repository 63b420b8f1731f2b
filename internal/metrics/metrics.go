// Package metrics exposes lockd's Prometheus metrics: lock outcomes, wait
// and hold times, waiters, per-node Redis latency and errors, and HTTP
// requests, in a registry of their own next to the Go and process
// collectors.
//
// Every label comes from a small fixed set or from the configuration (the
// Redis node index). Lock names, tokens and owners are unbounded, so they are
// never labels; per-lock detail belongs in the logs. Values outside a set
// are recorded as "other" rather than trusted, so a caller's mistake cannot
// grow the number of series.
package metrics

import (
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// other stands in for any label value outside its documented set.
const other = "other"

// unmatched is the route label of requests no route matched (Gin's FullPath
// is empty for them).
const unmatched = "unmatched"

// maxRoutes bounds the distinct route labels. lockd registers about twenty
// routes; the bound only matters if a caller passes raw paths by mistake, and
// then it stops lock names from turning into series without limit.
const maxRoutes = 32

// The result sets of the lock events. Each is pre-initialised, "other"
// included, so dashboards and rate() see every series from the first scrape.
var (
	acquireResults = []string{"granted", "locked", "unavailable", "invalid", "canceled", "too_many_waiters",
		"kind_mismatch", "limit_mismatch", "lock_delay", "unsupported"}
	releaseResults = []string{"released", "not_holder", "unavailable", "invalid", "kind_mismatch"}
	extendResults  = []string{"extended", "not_holder", "unavailable", "invalid", "kind_mismatch"}
	fenceResults   = []string{"current", "stale", "unavailable", "invalid", "kind_mismatch"}
)

// kinds are what a lock request asks for: a lock (the demo's included) or
// a semaphore's permit.
var kinds = []string{"lock", "semaphore"}

// httpMethods are the methods kept as labels; anything else (a scanner's
// invented verb) is "other".
var httpMethods = []string{
	http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace,
}

// Buckets, in seconds. Classic buckets rather than native histograms, so any
// Prometheus version and any dashboard can read them.
var (
	// waitBuckets cover an uncontended acquire (one Redis round trip, about
	// a millisecond) up to the longest wait /v1 allows, 5 minutes. HTTP
	// requests share them: an acquire that waits holds its request open for
	// as long, and everything else is as quick as the first buckets.
	waitBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	// holdBuckets run from a 10ms critical section to MAX_TTL's ceiling of
	// one hour; a lease extended past that lands in +Inf.
	holdBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600}
	// redisBuckets start at 100µs, a loopback round trip, and end at 2s, the
	// client's dial, read and write timeouts; the per-node bound (at most 1s)
	// cuts most calls off before that.
	redisBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2}
)

// Metrics holds lockd's collectors in its own registry (plus the Go and
// process collectors). Its methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	acquisitions, releases, extensions, fenceChecks resultCounter

	wait, hold prometheus.Histogram
	waiters    prometheus.Gauge

	redisDuration *prometheus.HistogramVec
	redisErrors   *prometheus.CounterVec

	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec

	routesMu sync.RWMutex
	routes   map[string]bool // route labels handed out so far
}

// New returns Metrics with every collector registered and every result
// series at 0. A private registry, not the global default, keeps tests and
// several instances in one process apart.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg:          reg,
		acquisitions: newResultCounter(reg, "lockd_acquisitions_total", "Lock acquisitions by result.", acquireResults),
		releases:     newResultCounter(reg, "lockd_releases_total", "Lock releases by result.", releaseResults),
		extensions:   newResultCounter(reg, "lockd_extensions_total", "Lease extensions by result.", extendResults),
		fenceChecks:  newResultCounter(reg, "lockd_fence_checks_total", "Fencing token checks by result.", fenceResults),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockd_wait_duration_seconds",
			Help:    "Time an acquire spent before its answer, invalid requests excluded.",
			Buckets: waitBuckets,
		}),
		hold: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "lockd_hold_duration_seconds",
			Help:    "Time from acquire to release, as far as the releaser knows it.",
			Buckets: holdBuckets,
		}),
		waiters: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lockd_waiters",
			Help: "Acquire requests waiting for a lock on this replica.",
		}),
		redisDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lockd_redis_command_duration_seconds",
			Help:    "Duration of Redis commands and pipelines by node (index, or a cluster node's host:port).",
			Buckets: redisBuckets,
		}, []string{"node"}),
		redisErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockd_redis_errors_total",
			Help: "Failed Redis dials, commands and pipelines by node (index, or a cluster node's host:port); missing keys and canceled calls excluded.",
		}, []string{"node"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lockd_http_requests_total",
			Help: "HTTP requests by route template, method and status code.",
		}, []string{"route", "method", "status"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lockd_http_request_duration_seconds",
			Help:    "HTTP request duration by route template and method.",
			Buckets: waitBuckets,
		}, []string{"route", "method"}),
		routes: make(map[string]bool),
	}
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.wait, m.hold, m.waiters,
		m.redisDuration, m.redisErrors,
		m.httpRequests, m.httpDuration,
	)
	// Built once: promhttp registers its own counters in reg, and a second
	// handler would only find them already there.
	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry returns the registry behind Handler, for tests and for callers
// that add collectors of their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Acquired records an acquire's result: "granted", "locked", "unavailable", "too_many_waiters",
// "invalid", "canceled", "kind_mismatch" (the name is held as the other
// kind), "limit_mismatch" (a semaphore asked with another limit than its
// holders'), "lock_delay" (the name is closed by a lock-delay) or
// "unsupported" (a shared lock, semaphore, fair queue or lock-delay in
// quorum mode). waited is observed for every result but "invalid", which
// is refused before any waiting.
func (m *Metrics) Acquired(kind, result string, waited time.Duration) {
	if m.acquisitions.inc(kind, result) != "invalid" {
		m.wait.Observe(waited.Seconds())
	}
}

// Released records a release's result: "released", "not_holder",
// "unavailable", "invalid" or "kind_mismatch". held is observed when positive; callers that
// do not know how long the lock was held pass 0.
func (m *Metrics) Released(kind, result string, held time.Duration) {
	m.releases.inc(kind, result)
	if held > 0 {
		m.hold.Observe(held.Seconds())
	}
}

// Extended records an extension's result: "extended", "not_holder",
// "unavailable", "invalid" or "kind_mismatch".
func (m *Metrics) Extended(kind, result string) { m.extensions.inc(kind, result) }

// FenceChecked records a fencing token check's result: "current", "stale",
// "unavailable", "invalid" or "kind_mismatch".
func (m *Metrics) FenceChecked(kind, result string) { m.fenceChecks.inc(kind, result) }

// Waiting adds delta to the number of acquires waiting on this replica: +1
// when one starts to wait, -1 when it stops.
func (m *Metrics) Waiting(delta int) { m.waiters.Add(float64(delta)) }

// HTTPRequest records a finished request. route must be Gin's route template
// (c.FullPath()), never the raw path; an empty route is "unmatched". Beyond
// maxRoutes distinct routes, and for unusual methods or impossible status
// codes, the label is "other".
func (m *Metrics) HTTPRequest(route, method string, status int, d time.Duration) {
	route = m.routeLabel(route)
	method = oneOf(httpMethods, method)
	code := other
	if status >= 100 && status <= 599 {
		code = strconv.Itoa(status)
	}
	m.httpRequests.WithLabelValues(route, method, code).Inc()
	m.httpDuration.WithLabelValues(route, method).Observe(d.Seconds())
}

func (m *Metrics) routeLabel(route string) string {
	if route == "" {
		return unmatched
	}
	m.routesMu.RLock()
	known := m.routes[route]
	m.routesMu.RUnlock()
	if known {
		return route
	}
	m.routesMu.Lock()
	defer m.routesMu.Unlock()
	if m.routes[route] {
		return route
	}
	if len(m.routes) >= maxRoutes {
		return other
	}
	m.routes[route] = true
	return route
}

// resultCounter is a counter by result that keeps to its set.
type resultCounter struct {
	vec     *prometheus.CounterVec
	results []string
}

func newResultCounter(reg prometheus.Registerer, name, help string, results []string) resultCounter {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"kind", "result"})
	for _, k := range kinds {
		for _, r := range append(slices.Clone(results), other) {
			vec.WithLabelValues(k, r)
		}
	}
	reg.MustRegister(vec)
	return resultCounter{vec: vec, results: results}
}

// inc counts result of a request for kind, result "other" when it is not
// in the set, and returns the result label it used. A kind other than
// "semaphore" is a lock's, so no caller's string can make a series.
func (c resultCounter) inc(kind, result string) string {
	result = oneOf(c.results, result)
	if kind != "semaphore" {
		kind = "lock"
	}
	c.vec.WithLabelValues(kind, result).Inc()
	return result
}

// oneOf returns v when set holds it and "other" when not.
func oneOf(set []string, v string) string {
	if slices.Contains(set, v) {
		return v
	}
	return other
}
