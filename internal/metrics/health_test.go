package metrics

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
)

// gauge is the value of the gauge name whose node label is node ("" for
// an unlabelled gauge), or -1 when there is no such series.
func gauge(t *testing.T, m *Metrics, name, node string) float64 {
	t.Helper()
	var labels map[string]string
	if node != "" {
		labels = map[string]string{"node": node}
	}
	s := series(t, m, name, labels)
	if s == nil {
		return -1
	}
	return s.GetGauge().GetValue()
}

// waitGauges polls the Redis gauges until node's is up and the quorum's
// is quorum, or fails after 10s.
func waitGauges(t *testing.T, m *Metrics, node string, up, quorum float64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		gotUp, gotQuorum := gauge(t, m, "lockd_redis_node_up", node), gauge(t, m, "lockd_redis_quorum", "")
		if gotUp == up && gotQuorum == quorum {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("lockd_redis_node_up{node=%q} = %v, lockd_redis_quorum = %v; want %v and %v", node, gotUp, gotQuorum, up, quorum)
		}
	}
}

// newManager is a prepared lock.Manager over the nodes at addrs.
func newManager(t *testing.T, addrs ...string) *lock.Manager {
	t.Helper()
	var nodes []*redis.Options
	for _, a := range addrs {
		nodes = append(nodes, &redis.Options{Addr: a, Password: "pw"})
	}
	locks := lock.New(lock.Config{Nodes: nodes, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() { _ = locks.Close() })
	// As lockd does at start: Prepare marks the nodes, and Run probes a
	// node requests skip and, in quorum mode, lets a new node vote once it
	// has been up a moment (until then it counts as restarted).
	if err := locks.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); locks.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return locks
}

// TestRedisGaugesFollowRedis: over one real Redis, the gauges read 1 while
// it runs, 0 once it is stopped, and 1 again when it is back on its port,
// with nothing but scrapes in between.
func TestRedisGaugesFollowRedis(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	m := New()
	m.WatchRedis(newManager(t, srv.Addr))

	waitGauges(t, m, srv.Addr, 1, 1)
	srv.Stop()
	waitGauges(t, m, srv.Addr, 0, 0)
	redistest.Start(t, redistest.Options{Password: "pw", Port: srv.Port})
	waitGauges(t, m, srv.Addr, 1, 1)
}

// TestRedisGaugesQuorum: in quorum mode each node has its own series, and
// the quorum gauge falls only when a majority is gone.
func TestRedisGaugesQuorum(t *testing.T) {
	t.Parallel()
	var srvs []*redistest.Server
	var addrs []string
	for range 3 {
		s := redistest.Start(t, redistest.Options{Password: "pw"})
		srvs, addrs = append(srvs, s), append(addrs, s.Addr)
	}
	m := New()
	m.WatchRedis(newManager(t, addrs...))

	waitGauges(t, m, addrs[0], 1, 1)
	srvs[0].Stop()
	waitGauges(t, m, addrs[0], 0, 1)
	if got := gauge(t, m, "lockd_redis_node_up", addrs[1]); got != 1 {
		t.Errorf("a running node's gauge is %v, want 1", got)
	}
	srvs[1].Stop()
	waitGauges(t, m, addrs[1], 0, 0)
	if got := gauge(t, m, "lockd_redis_node_up", addrs[2]); got != 1 {
		t.Errorf("the last running node's gauge is %v, want 1", got)
	}
}

// twinHealth reports one address twice, as no real topology does today.
type twinHealth struct{}

func (twinHealth) Health(context.Context, time.Duration) (bool, []lock.NodeHealth) {
	return true, []lock.NodeHealth{{Addr: "redis:6379", OK: true}, {Addr: "redis:6379", Err: "refused"}}
}

// TestRedisGaugesDuplicateNode: an address reported twice yields one series
// (the first answer) instead of a scrape that fails as a whole.
func TestRedisGaugesDuplicateNode(t *testing.T) {
	m := New()
	m.WatchRedis(twinHealth{})
	if got := gauge(t, m, "lockd_redis_node_up", "redis:6379"); got != 1 {
		t.Errorf("lockd_redis_node_up = %v, want 1", got)
	}
}

// countingHealth counts the checks a real Manager is asked for.
type countingHealth struct {
	*lock.Manager
	calls atomic.Int64
}

func (c *countingHealth) Health(ctx context.Context, timeout time.Duration) (bool, []lock.NodeHealth) {
	c.calls.Add(1)
	return c.Manager.Health(ctx, timeout)
}

// TestScrapesShareOneCheck: a flood of scrapes asks Redis once a second,
// not once a scrape, and a scrape after that second asks again.
func TestScrapesShareOneCheck(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	h := &countingHealth{Manager: newManager(t, srv.Addr)}
	m := New()
	m.WatchRedis(h)
	start := time.Now()
	for range 50 {
		if gauge(t, m, "lockd_redis_quorum", "") != 1 {
			t.Fatal("quorum gauge not 1 with Redis up")
		}
	}
	// One check per healthReuse begun, however slow the machine made the
	// scrapes.
	if n, most := h.calls.Load(), 1+int64(time.Since(start)/healthReuse); n < 1 || n > most {
		t.Fatalf("50 scrapes in %v made %d checks, want at most %d", time.Since(start), n, most)
	}
	before := h.calls.Load()
	time.Sleep(healthReuse + 50*time.Millisecond)
	gauge(t, m, "lockd_redis_quorum", "")
	if h.calls.Load() != before+1 {
		t.Fatalf("a scrape after %v made %d checks, want 1", healthReuse, h.calls.Load()-before)
	}
}
