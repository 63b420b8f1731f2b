package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// percentile of sorted durations, by the nearest rank below.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[int(p*float64(len(sorted)-1))]
}

// latencies is one repetition's samples, summarised.
type latencies struct{ p50, p99, max time.Duration }

func summarise(d []time.Duration) latencies {
	slices.Sort(d)
	if len(d) == 0 {
		return latencies{}
	}
	return latencies{percentile(d, 0.5), percentile(d, 0.99), d[len(d)-1]}
}

// across combines repetitions: the median of their p50s and of their p99s,
// and the largest of their maxima, so that one slow repetition shows in the
// max column without moving the medians.
func across(reps []latencies) latencies {
	var p50, p99 []time.Duration
	var out latencies
	for _, r := range reps {
		p50, p99 = append(p50, r.p50), append(p99, r.p99)
		out.max = max(out.max, r.max)
	}
	out.p50, out.p99 = median(p50), median(p99)
	return out
}

func median[T int64 | float64 | time.Duration](v []T) T {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// usage is a snapshot of what a run costs: Redis commands and the CPU time
// of the Redis, service (lockd, the naive service, a peer such as etcd)
// and benchmark processes.
type usage struct {
	// commands counts those run inside scripts too (INFO commandstats);
	// sent counts round trips, of the benchmark's in-process clients (a
	// go-redis hook) and through a counted cluster's proxies.
	commands, sent             int64
	redisCPU, serviceCPU, self time.Duration
	// standbyCPU is that of a topology's replicas and sentinels.
	standbyCPU time.Duration
	// nodes are each node's own figures, in the order of cluster.redis.
	nodes []nodeStat
}

func (c *cluster) usage(ctx context.Context) (usage, error) {
	var u usage
	var err error
	if u.nodes, err = nodeStats(ctx, c.rdb); err != nil {
		return u, err
	}
	u.commands = sum(u.nodes).total()
	// lockd's own round trips are seen only on a counted cluster, by its
	// proxies: never by asking lockd.
	u.sent = c.sent.n.Load() + c.proxyTrips()
	if u.redisCPU, err = cpuTime(c.redisPIDs()...); err != nil {
		return u, err
	}
	if u.serviceCPU, err = cpuTime(c.servicePIDs()...); err != nil {
		return u, err
	}
	if u.standbyCPU, err = cpuTime(pids(c.standby)...); err != nil {
		return u, err
	}
	u.self, err = cpuTime(0)
	return u, err
}

func (u usage) sub(v usage) usage {
	d := usage{commands: u.commands - v.commands, sent: u.sent - v.sent, redisCPU: u.redisCPU - v.redisCPU,
		serviceCPU: u.serviceCPU - v.serviceCPU, self: u.self - v.self, standbyCPU: u.standbyCPU - v.standbyCPU}
	for i := range min(len(u.nodes), len(v.nodes)) {
		d.nodes = append(d.nodes, u.nodes[i].sub(v.nodes[i]))
	}
	return d
}

// table is one markdown table.
type table struct {
	title  string
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| %s |\n|", strings.Join(t.header, " | "))
	for range t.header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		fmt.Fprintf(&b, "| %s |\n", strings.Join(r, " | "))
	}
	return b.String()
}

// ms prints a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 1:
		return fmt.Sprintf("%.3f", f)
	case f < 100:
		return fmt.Sprintf("%.2f", f)
	default:
		return fmt.Sprintf("%.0f", f)
	}
}

// us prints a duration in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0f", float64(d)/float64(time.Microsecond)) }

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
