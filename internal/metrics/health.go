package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// HealthTimeout bounds each Redis node's answer to the check behind the
// Redis gauges: the same bound as /readyz's, so the gauges and readiness
// agree on what "up" means.
const HealthTimeout = 500 * time.Millisecond

// healthDeadline bounds the whole check in one scrape. Health asks the
// nodes at once, each within HealthTimeout; in cluster mode it first reads
// the slots, so it gets a few round trips more. Prometheus' scrape timeout
// (10s by default) stays well clear of it.
const healthDeadline = 3 * time.Second

// RedisHealth is the readiness check of the lock domain, lock.Manager's
// Health: whether a quorum of nodes (or the one Redis, the cluster's every
// master, Sentinel's master) is fit for locks now, and each node's answer.
type RedisHealth interface {
	Health(ctx context.Context, timeout time.Duration) (bool, []lock.NodeHealth)
}

// WatchRedis registers the gauges lockd_redis_node_up{node} (1 when the
// node answered and is fit for locks, else 0) and lockd_redis_quorum (1
// when enough of them are for a lock to be granted, else 0), computed at
// each scrape from h, the check /readyz runs. They are what alerts on an
// unreachable Redis or a lost quorum need: the error counter only moves
// while requests come, and readiness is not a metric.
//
// The node label is each node's address as Health reports it: host:port,
// "sentinel master NAME" in Sentinel mode, and in cluster mode each master's
// host:port, plus "slots" while some slots have no master. The
// configuration bounds it, as the other node labels; it is never a lock
// name. A node that goes away (a master replaced after a failover) leaves
// no stale series: nothing is kept between scrapes.
//
// Call it at most once per Metrics: a second call panics, as registering
// the same metrics twice does.
func (m *Metrics) WatchRedis(h RedisHealth) {
	m.reg.MustRegister(&redisHealthCollector{
		check: h,
		up: prometheus.NewDesc("lockd_redis_node_up",
			"1 when the Redis node answered the readiness check within 500ms and is fit for locks, else 0; asked at each scrape.",
			[]string{"node"}, nil),
		quorum: prometheus.NewDesc("lockd_redis_quorum",
			"1 when enough Redis nodes are fit for locks to grant one (a quorum, or the one Redis), else 0; asked at each scrape.",
			nil, nil),
	})
}

// redisHealthCollector asks Redis at scrape time rather than keeping a
// gauge up to date from a loop of its own: no goroutine to stop, and the
// value is never older than the scrape, or than healthReuse.
type redisHealthCollector struct {
	check      RedisHealth
	up, quorum *prometheus.Desc

	// mu makes scrapes take turns; one within healthReuse of the last
	// check reuses its answer. /metrics is open by default, and without
	// this every request to it would send each Redis node an INFO.
	mu    sync.Mutex
	at    time.Time
	ok    bool
	nodes []lock.NodeHealth
}

// healthReuse is how long one check answers the scrapes that follow it:
// far below any scrape interval, so Prometheus always gets a fresh one.
const healthReuse = time.Second

func (c *redisHealthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.quorum
}

func (c *redisHealthCollector) health() (bool, []lock.NodeHealth) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= healthReuse {
		ctx, cancel := context.WithTimeout(context.Background(), healthDeadline)
		defer cancel()
		c.ok, c.nodes = c.check.Health(ctx, HealthTimeout)
		c.at = time.Now()
	}
	return c.ok, c.nodes
}

func (c *redisHealthCollector) Collect(ch chan<- prometheus.Metric) {
	ok, nodes := c.health()
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		// Two series with one label set would fail the whole scrape.
		if seen[n.Addr] {
			continue
		}
		seen[n.Addr] = true
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, gaugeValue(n.OK), n.Addr)
	}
	ch <- prometheus.MustNewConstMetric(c.quorum, prometheus.GaugeValue, gaugeValue(ok))
}

func gaugeValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
