package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// takeoverScenario: a holder vanishes without releasing; a waiter on the
// other replica should get the lock as soon as the lease ends.
func takeoverScenario(b *bench) (section, error) {
	c := b.single
	a := newAPI(4)
	defer a.close()
	ttl, trials := 500*time.Millisecond, 8
	if b.smoke {
		ttl, trials = 200*time.Millisecond, 2
	}
	var reps []latencies
	var all []time.Duration
	for rep := range b.reps {
		var gaps []time.Duration
		for i := range trials {
			name := fmt.Sprintf("abandoned.%d.%d", rep, i)
			holder, waiter := c.urls[i%2], c.urls[(i+1)%2]
			sent := time.Now()
			if _, err := a.acquire(b.ctx, holder, name, ttl, 0); err != nil {
				return section{}, err
			}
			// The lease can last no longer than from the send time: that
			// is the end a client must assume, and the one measured from.
			ends := sent.Add(ttl)
			if _, err := a.acquire(b.ctx, waiter, name, 10*time.Second, 5*time.Second); err != nil {
				return section{}, err
			}
			gap := time.Since(ends)
			if gap < 0 {
				return section{}, fmt.Errorf("SAFETY VIOLATION: %s granted %v before the abandoned lease could have ended", name, -gap)
			}
			gaps = append(gaps, gap)
		}
		all = append(all, gaps...)
		reps = append(reps, summarise(gaps))
	}
	l := across(reps)
	t := &table{header: []string{"lease", "trials", "lease end → grant p50", "p99", "max"}}
	t.add(ttl.String(), fmt.Sprint(len(all)), ms(l.p50), ms(l.p99), ms(l.max))
	shows := fmt.Sprintf("A holder takes a %v lease on one replica and never releases it; a waiter on the other replica "+
		"asks at once with a wait. The gap runs from the latest moment the lease can end (the holder's send time + TTL) "+
		"to the waiter's grant: %s ms at the median, %s ms at worst (target ≤ 50 ms: %s). The waiter's timer is set "+
		"to the holder's remaining TTL, read from Redis, so it needs no polling.",
		ttl, ms(l.p50), ms(l.max), verdict(l.max <= 50*time.Millisecond))
	return section{title: "3. Abandoned lease takeover", tables: []*table{t}, shows: shows}, nil
}

// quorumScenario compares quorum mode (three nodes) with one node on the
// uncontended cycle at concurrency 16, interleaved, and counts the round
// trips of each on counted clusters.
func quorumScenario(b *bench) (section, error) {
	q, err := startCluster(b.ctx, b.lockd, b.dir+"/quorum", clusterOptions{nodes: 3})
	if err != nil {
		return section{}, err
	}
	defer q.stop()
	a := newAPI(16)
	defer a.close()
	d := b.scaled(3 * time.Second)
	if b.smoke {
		d = 200 * time.Millisecond
	}
	single, quorum := &cell{name: "1 node"}, &cell{name: "3 nodes (quorum)"}
	for range b.reps {
		for _, x := range []struct {
			c  *cluster
			to *cell
		}{{b.single, single}, {q, quorum}} {
			r, err := runCycles(b.ctx, x.c, 16, d, lockdLocker(a, x.c.urls[0]))
			if err != nil {
				return section{}, fmt.Errorf("%s: %w", x.to.name, err)
			}
			x.to.reps = append(x.to.reps, r)
			b.logf("  %-18s %8.0f ops/s", x.to.name, r.opsPerSec)
		}
	}

	// Round trips, on counted clusters of the same shapes.
	n := 1000
	if b.smoke {
		n = 100
	}
	cs, err := b.counted()
	if err != nil {
		return section{}, err
	}
	qc, err := startCluster(b.ctx, b.lockd, b.dir+"/quorum-counted", clusterOptions{nodes: 3, counted: true})
	if err != nil {
		return section{}, err
	}
	defer qc.stop()
	var counted []trips
	for _, c := range []*cluster{cs, qc} {
		tr, err := countTrips(b.ctx, c, lockdLocker(a, c.urls[0]), n, 16)
		if err != nil {
			return section{}, fmt.Errorf("counting round trips: %w", err)
		}
		counted = append(counted, tr)
	}

	t := &table{header: []string{"Redis", "cycles/s", "p50", "p99", "max", "round trips/acquire (all nodes)", "round trips/release (all nodes)",
		"Redis cmds/cycle (all nodes)", "lockd CPU/cycle", "Redis CPU/cycle (all nodes)"}}
	for i, ce := range []*cell{single, quorum} {
		l, u := ce.lat(), ce.cost()
		t.add(ce.name, fmt.Sprintf("%.0f", ce.ops()), ms(l.p50), ms(l.p99), ms(l.max),
			fmt.Sprintf("%.2f", counted[i].acquire), fmt.Sprintf("%.2f", counted[i].release),
			thousandths(u.commands), us(u.serviceCPU), us(u.redisCPU))
	}
	r := quorum.ops() / single.ops()
	shows := fmt.Sprintf("`/v1` acquire + release at concurrency 16 against one Redis and against three (Redlock, a majority "+
		"of votes per lock). Quorum mode does %.2f× the single node's throughput (target ≥ 0.75×: %s) at %.2f× its median "+
		"latency. Round trips are counted as in section 1, by a proxy in front of each node, over %d acquires and their "+
		"releases, and added up over the nodes.",
		r, verdict(r >= 0.75), float64(quorum.lat().p50)/float64(single.lat().p50), n)
	return section{title: "4. Quorum mode", tables: []*table{t}, shows: shows}, nil
}

// demoScenario times the README's demo endpoint on a lock that is held:
// GET /lock retries with redsync's defaults and then fails.
func demoScenario(b *bench) (section, error) {
	t := &table{header: []string{"request", "runs", "time to fail p50", "max"}}
	if b.smoke {
		// redsync's default retries take ~4.7 s whatever we do; a smoke
		// run has no time for that.
		return section{title: "6. The demo", shows: "Skipped in a smoke run (one request takes about 5 s)."}, nil
	}
	c := b.single
	a := newAPI(2)
	defer a.close()
	var took []time.Duration
	for rep := range b.reps {
		name := fmt.Sprintf("demo-held-%d", rep)
		l, err := a.acquire(b.ctx, c.urls[0], name, time.Minute, 0)
		if err != nil {
			return section{}, err
		}
		// The demo endpoint is not /v1 and client/ does not call it.
		t0 := time.Now()
		code, body, err := a.do(b.ctx, http.MethodGet, c.urls[1]+"/lock?resource_id="+url.QueryEscape(name), nil)
		if err != nil {
			return section{}, err
		}
		took = append(took, time.Since(t0))
		if code != http.StatusInternalServerError {
			return section{}, fmt.Errorf("GET /lock on a held lock: %d %s, want 500", code, body)
		}
		if err := release(context.WithoutCancel(b.ctx), l); err != nil {
			return section{}, err
		}
	}
	l := summarise(took)
	t.add("`GET /lock?resource_id=` on a held lock", fmt.Sprint(len(took)), ms(l.p50), ms(l.max))
	shows := fmt.Sprintf("The demo endpoint keeps redsync's default retries (32 tries, 50–250 ms apart), so a request "+
		"for a held resource fails after %.1f s at the median (the README shows 4.7 s). `/v1` answers the same "+
		"question at once with 409, or waits without polling.", l.p50.Seconds())
	return section{title: "6. The demo", tables: []*table{t}, shows: shows}, nil
}
