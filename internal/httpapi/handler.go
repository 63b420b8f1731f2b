// Package httpapi is lockd's HTTP layer: Gin routes over the lock domain.
// routes.go lists the whole API; demo.go serves the README's GET /lock,
// events.go the lock events, stream.go the replica's one reader of them
// and ui.go the dashboard.
package httpapi

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/trace"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// Options are the HTTP layer's settings.
type Options struct {
	// LockExpiry is the TTL of a demo lock (the README's 30s).
	LockExpiry time.Duration
	// CriticalSection is how long the demo's simulated operation runs.
	CriticalSection time.Duration
	// APITokens, when not empty, are the bearer tokens /v1 requires.
	APITokens []string
	// MetricsRequireAuth puts /metrics behind the same tokens.
	MetricsRequireAuth bool
	// MaxBodyBytes caps a /v1 request body (default 64 KiB).
	MaxBodyBytes int64
	// TrustedProxies may set X-Forwarded-For; none by default.
	TrustedProxies []string
	// Metrics serves /metrics and counts every request; nil: no /metrics.
	Metrics Metrics
	// Draining is closed when shutdown begins: /readyz then answers 503
	// so that load balancers stop sending traffic, and /v1/events streams
	// end at once.
	Draining <-chan struct{}
	// Replica names this replica in lock events (REPLICA_NAME).
	Replica string
	// UIPeers are the origins (scheme://host:port) of the other replicas:
	// the dashboard calls them, and CORS and the cross-origin check let
	// them call /lock and /v1.
	UIPeers []string
	// DemoDisabled removes GET /lock (DEMO_ENABLED=false); the zero value
	// serves the README's demo.
	DemoDisabled bool
	// TracerProvider receives a server span per request (tracing.go); nil:
	// none.
	TracerProvider trace.TracerProvider
	// RecordLockNames puts lock names and raw paths on those spans
	// (OTEL_RECORD_LOCK_NAMES).
	RecordLockNames bool
}

// Metrics is what the HTTP layer needs from internal/metrics.
type Metrics interface {
	Handler() http.Handler
	HTTPRequest(route, method string, status int, d time.Duration)
}

type server struct {
	log   *slog.Logger
	locks *lock.Manager
	opts  Options
	hub   *eventHub // behind /v1/events
}

// NewHandler returns lockd's HTTP handler. It never touches Redis itself:
// every lock operation goes through locks. It returns an error only for
// trusted proxies that are not addresses or CIDRs, or UI peers that are not
// origins.
func NewHandler(logger *slog.Logger, locks *lock.Manager, opts Options) (http.Handler, error) {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = defaultMaxBody
	}
	s := &server{log: logger, locks: locks, opts: opts, hub: newEventHub(locks, logger)}
	r := gin.New()
	// Route on the path as sent, then unescape each parameter: a name with
	// an escaped slash (a%2Fb) reaches the name check and gets its 400
	// saying what is wrong with it, rather than a 404 for the route
	// /v1/locks/a/b it was decoded into.
	r.UseRawPath = true
	// Only the proxies named are believed about the client's address;
	// with none, the client IP in the logs is the peer's address.
	if err := r.SetTrustedProxies(opts.TrustedProxies); err != nil {
		return nil, err
	}
	csrf, err := crossOrigin(opts.UIPeers)
	if err != nil {
		return nil, err
	}
	r.Use(requestID)
	if opts.TracerProvider != nil {
		// Outside the access log and recovery, so that a panic's 500 and
		// the log line carry the span.
		r.Use(traceRequests(opts.TracerProvider, opts.RecordLockNames))
	}
	r.Use(accessLog(logger), recovery(logger), cors(opts.UIPeers), csrf)
	if opts.Metrics != nil {
		r.Use(countRequests(opts.Metrics))
	}
	s.routes(r)
	return r, nil
}
