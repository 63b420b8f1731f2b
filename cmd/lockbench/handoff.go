package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
)

// hotLock is the shared state of competitors on one name. It checks safety
// (no grant while the previous holder has not yet called release) and keeps
// the grant sequence for the hand-off gaps.
type hotLock struct {
	mu       sync.Mutex
	cond     *sync.Cond
	holder   int // competitor holding it, -1 for nobody
	last     int // the latest holder, -1 before the first grant
	stopped  bool
	granted  []time.Time // when each grant's acquire returned
	sent     []time.Time // when that grant's release was sent
	released []time.Time // when that grant's release returned
	who      []int
	unsafe   int
}

func newHotLock() *hotLock {
	h := &hotLock{holder: -1, last: -1}
	h.cond = sync.NewCond(&h.mu)
	return h
}

// grant records that competitor w's acquire returned at at, and returns the
// grant's index.
func (h *hotLock) grant(w int, at time.Time) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.holder != -1 {
		h.unsafe++
	}
	h.holder, h.last = w, w
	h.granted = append(h.granted, at)
	h.sent = append(h.sent, time.Time{})
	h.released = append(h.released, time.Time{})
	h.who = append(h.who, w)
	h.cond.Broadcast()
	return len(h.granted) - 1
}

// releasing is called before the release is sent: from then on another
// grant is legitimate.
func (h *hotLock) releasing() {
	h.mu.Lock()
	h.holder = -1
	h.mu.Unlock()
}

// releasedAt records that grant i's release was sent at sent and answered
// at at.
func (h *hotLock) releasedAt(i int, sent, at time.Time) {
	h.mu.Lock()
	h.sent[i], h.released[i] = sent, at
	h.mu.Unlock()
}

// awaitOther blocks until someone other than w got the lock, so that a
// competitor re-queues only behind a real hand-off, or until the run stops.
func (h *hotLock) awaitOther(w int) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for h.last == w && !h.stopped {
		h.cond.Wait()
	}
	return !h.stopped
}

func (h *hotLock) stop() {
	h.mu.Lock()
	h.stopped = true
	h.cond.Broadcast()
	h.mu.Unlock()
}

// handoffResult is one repetition of one cell.
type handoffResult struct {
	perSec float64
	gap    latencies
	// fromSent runs from the release being sent (not answered) to the
	// next holder's answer.
	fromSent     latencies
	most, fewest int
	cmdsPerGrant int64 // thousandths, counting commands inside scripts
	sentPerGrant int64 // thousandths: round trips
	// serviceCPU and redisCPU are per grant: lockd's replicas (and any
	// peer the cluster runs) and Redis.
	serviceCPU, redisCPU time.Duration
	unsafe, grants       int
}

// competitor takes the lock (blocking until granted or ctx ends) and gives
// it back. take returns the release to call.
type competitor func(ctx context.Context, w int) (release func() error, err error)

const holdFor = time.Millisecond

// drainFor bounds how long a draining run (runHandoff's drain) waits for
// its competitors once the time is up.
const drainFor = 30 * time.Second

// runHandoff has n competitors take and give back one name for d. When the
// time is up, those still waiting are called off, or with drain are served
// and release, unrecorded.
func runHandoff(ctx context.Context, c *cluster, n int, d time.Duration, take competitor, drain bool) (handoffResult, error) {
	h := newHotLock()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	before, err := c.usage(ctx)
	if err != nil {
		return handoffResult{}, err
	}
	start := time.Now()
	end := start.Add(d)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for w := range n {
		wg.Go(func() {
			for runCtx.Err() == nil {
				release, err := take(runCtx, w)
				if runCtx.Err() != nil {
					if err == nil {
						_ = release()
					}
					return
				}
				if err != nil {
					errs[w] = err
					cancel()
					return
				}
				i := h.grant(w, time.Now())
				time.Sleep(holdFor)
				h.releasing()
				sent := time.Now()
				if err := release(); err != nil {
					errs[w] = err
					cancel()
					return
				}
				h.releasedAt(i, sent, time.Now())
				if !time.Now().Before(end) || !h.awaitOther(w) {
					return
				}
			}
		})
	}
	select {
	case <-time.After(time.Until(end)):
	case <-runCtx.Done():
	}
	after, uerr := c.usage(ctx)
	h.stop()
	if !drain {
		cancel()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(drainFor):
		cancel()
		<-done
	}
	if err := errors.Join(append(errs, ctx.Err(), uerr)...); err != nil {
		return handoffResult{}, err
	}

	counts := make([]int, n)
	var gaps, fromSent []time.Duration
	grants := 0
	for i, at := range h.granted {
		if at.After(end) {
			break
		}
		grants++
		counts[h.who[i]]++
		if i > 0 && !h.released[i-1].IsZero() {
			// The next holder often hears of its grant before the
			// releaser's answer arrives: that is no gap at all.
			gaps = append(gaps, max(0, at.Sub(h.released[i-1])))
			fromSent = append(fromSent, max(0, at.Sub(h.sent[i-1])))
		}
	}
	if grants == 0 {
		return handoffResult{}, fmt.Errorf("no grant in %v", d)
	}
	return handoffResult{
		perSec: float64(grants) / d.Seconds(), gap: summarise(gaps), fromSent: summarise(fromSent),
		most: slices.Max(counts), fewest: slices.Min(counts),
		cmdsPerGrant: after.sub(before).commands * 1000 / int64(grants),
		sentPerGrant: after.sub(before).sent * 1000 / int64(grants),
		serviceCPU:   after.sub(before).serviceCPU / time.Duration(grants),
		redisCPU:     after.sub(before).redisCPU / time.Duration(grants),
		unsafe:       h.unsafe, grants: grants,
	}, nil
}

// lockdCompetitor waits on /v1 as every waiter does by default (wake and
// retry: a release wakes the oldest waiter of each replica, which tries
// again), competitor w on replica w%2, so every hand-off has even odds of
// crossing replicas.
func lockdCompetitor(a *api, c *cluster, name string) competitor {
	return func(ctx context.Context, w int) (func() error, error) {
		base := c.urls[w%len(c.urls)]
		l, err := a.acquire(ctx, base, name, 10*time.Second, 30*time.Second)
		if err != nil {
			return nil, err
		}
		return func() error { return release(context.Background(), l) }, nil
	}
}

// fairCompetitor waits on /v1 with "fair":true, in the name's queue in
// Redis: the releasing script grants the name to the queue's head. Its
// competitors spread over the replicas as lockdCompetitor's do.
func fairCompetitor(a *api, c *cluster, name string) competitor {
	return func(ctx context.Context, w int) (func() error, error) {
		base := c.urls[w%len(c.urls)]
		l, err := a.acquireV1(ctx, base, "locks", name, map[string]any{"ttl": "10s", "wait": "30s", "fair": true})
		if err != nil {
			return nil, err
		}
		return func() error { return a.releaseV1(context.Background(), l) }, nil
	}
}

// redsyncCompetitor is redsync with its default options, as an application
// would use it: it polls (32 tries, 50–250 ms apart) and, when the tries run
// out, the competitor simply asks again.
func redsyncCompetitor(rs *redsync.Redsync, name string) competitor {
	return func(ctx context.Context, w int) (func() error, error) {
		for {
			mu := rs.NewMutex("lock:" + name)
			err := mu.LockContext(ctx)
			if err == nil {
				return func() error {
					_, err := mu.UnlockContext(context.Background())
					return err
				}, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var taken *redsync.ErrTaken
			if !errors.Is(err, redsync.ErrFailed) && !errors.As(err, &taken) {
				return nil, err
			}
		}
	}
}

// Rows of the hand-off table besides implEtcd.
const (
	implRetry   = "lockd /v1, wake-and-retry"
	implFair    = "lockd /v1, fair"
	implPolling = "redsync default polling"
)

// handoffImpl is one kind of competitor in the hand-off table.
type handoffImpl struct {
	name string
	key  string // in the lock names it uses
	// take makes the competitors for name on cluster c.
	take func(c *cluster, name string) competitor
	// lockd rows have their round trips counted on the counted cluster;
	// redis is false for etcd, which has no Redis figures.
	lockd, redis bool
	// drain: its waiters must not be called off at the end of a run
	// (runHandoff). etcd 3.4's JSON gateway does not withdraw a lock
	// request whose HTTP client went away: on 3.4.23, after one run with
	// 64 competitors whose waiters were called off, every later run on the
	// same etcd, on other names and with other leases, stalled after its
	// first grant.
	drain bool
}

// handoffCell names one cell of the hand-off table.
type handoffCell struct {
	impl string
	n    int // competitors
}

// handoffAgg is a cell's figures over its repetitions.
type handoffAgg struct {
	perSec         float64
	gap, fromSent  latencies
	most, fewest   int
	cmds, sent     int64 // thousandths per grant
	service, redis time.Duration
}

func handoffScenario(b *bench) (section, error) {
	ns := []int{8, 64}
	a := newAPI(64)
	defer a.close()
	rs := redsync.New(goredis.NewPool(b.single.rdb[0]))
	impls := []handoffImpl{
		{name: implRetry, key: "retry", lockd: true, redis: true,
			take: func(c *cluster, name string) competitor { return lockdCompetitor(a, c, name) }},
		{name: implFair, key: "fair", lockd: true, redis: true,
			take: func(c *cluster, name string) competitor { return fairCompetitor(a, c, name) }},
		{name: implPolling, key: "redsync", redis: true,
			take: func(_ *cluster, name string) competitor { return redsyncCompetitor(rs, name) }},
	}
	etcd, etcdNote := startEtcd(b.ctx, b.dir)
	if etcd != nil {
		defer etcd.stop()
		etcdNote = fmt.Sprintf("version %s, one member with its data on tmpfs", etcd.version(b.ctx))
		leases, err := etcd.grantLeases(b.ctx, a, slices.Max(ns))
		if err != nil {
			return section{}, err
		}
		impls = append(impls, handoffImpl{name: implEtcd, key: "etcd", drain: true,
			take: func(_ *cluster, name string) competitor { return etcd.competitor(a, name, leases) }})
	}
	b.logf("  etcd: %s", etcdNote)
	res, err := timedHandoffs(b, ns, impls)
	if err != nil {
		return section{}, err
	}
	countedSent, err := countedHandoffs(b, a, ns, impls)
	if err != nil {
		return section{}, err
	}
	t := &table{header: []string{"client", "competitors", "grants/s", "gap p50", "gap p99", "gap max",
		"release sent → next answer p50", "p99", "most/fewest per competitor", "Redis round trips/grant", "Redis cmds/grant"}}
	got := map[handoffCell]handoffAgg{}
	for _, n := range ns {
		for _, im := range impls {
			cell := handoffCell{im.name, n}
			g := aggregate(res[cell])
			if im.lockd {
				// lockd talks to Redis on its own: only the proxy sees it.
				g.sent = countedSent[cell]
			}
			got[cell] = g
			sent, cmds := thousandths(g.sent), thousandths(g.cmds)
			if !im.redis {
				sent, cmds = "–", "–"
			}
			t.add(im.name, fmt.Sprint(n), fmt.Sprintf("%.0f", g.perSec), ms(g.gap.p50), ms(g.gap.p99), ms(g.gap.max),
				ms(g.fromSent.p50), ms(g.fromSent.p99), fmt.Sprintf("%d/%d", g.most, g.fewest), sent, cmds)
		}
	}
	cost := &table{
		title: "The cost of fairness under contention, from the runs above (CPU per grant from the same timed runs: " +
			"lockd's two replicas, and Redis):",
		header: []string{"competitors", "grants/s, wake-and-retry", "grants/s, fair", "fair ÷ wake-and-retry",
			"round trips/grant, wake-and-retry", "round trips/grant, fair", "fair ÷ wake-and-retry",
			"Redis cmds/grant, wake-and-retry", "Redis cmds/grant, fair",
			"lockd CPU/grant, wake-and-retry", "lockd CPU/grant, fair", "Redis CPU/grant, wake-and-retry", "Redis CPU/grant, fair"},
	}
	for _, n := range ns {
		r, f := got[handoffCell{implRetry, n}], got[handoffCell{implFair, n}]
		cost.add(fmt.Sprint(n), fmt.Sprintf("%.0f", r.perSec), fmt.Sprintf("%.0f", f.perSec), ratio(f.perSec, r.perSec),
			thousandths(r.sent), thousandths(f.sent), ratio(float64(f.sent), float64(r.sent)),
			thousandths(r.cmds), thousandths(f.cmds), us(r.service), us(f.service), us(r.redis), us(f.redis))
	}
	shows, missed := handoffVerdicts(ns, got, etcd != nil, etcdNote)
	return section{title: "2. Hot lock hand-off", tables: []*table{t, cost}, shows: shows, explained: missed && !b.smoke}, nil
}

// timedHandoffs runs every cell on the single cluster, the repetitions
// interleaved.
func timedHandoffs(b *bench, ns []int, impls []handoffImpl) (map[handoffCell][]handoffResult, error) {
	c := b.single
	res := map[handoffCell][]handoffResult{}
	d := b.scaled(5 * time.Second)
	if b.smoke {
		d = 200 * time.Millisecond
	}
	for rep := range b.reps {
		for _, n := range ns {
			for _, im := range impls {
				name := fmt.Sprintf("hot.%d.%d.%s", rep, n, im.key)
				r, err := safeHandoff(b, c, n, d, im.take(c, name), im.drain, im.name)
				if err != nil {
					return nil, err
				}
				cell := handoffCell{im.name, n}
				res[cell] = append(res[cell], r)
				b.logf("  rep %d %-34s n=%-3d %6.0f grants/s gap p50 %s ms, from sent %s ms, most/fewest %d/%d",
					rep+1, im.name, n, r.perSec, ms(r.gap.p50), ms(r.fromSent.p50), r.most, r.fewest)
			}
		}
	}
	return res, nil
}

// countedHandoffs is the lockd rows' round trips per grant (thousandths),
// on the counted cluster: one run each, never timed.
func countedHandoffs(b *bench, a *api, ns []int, impls []handoffImpl) (map[handoffCell]int64, error) {
	cc, err := b.counted()
	if err != nil {
		return nil, err
	}
	sent := map[handoffCell]int64{}
	for _, n := range ns {
		for _, im := range impls {
			if !im.lockd {
				continue
			}
			take := im.take(cc, fmt.Sprintf("hot.counted.%d.%s", n, im.key))
			r, err := safeHandoff(b, cc, n, b.scaled(2*time.Second), take, im.drain, im.name+", counted")
			if err != nil {
				return nil, err
			}
			sent[handoffCell{im.name, n}] = r.sentPerGrant
			b.logf("  counted %-34s n=%-3d %s round trips/grant", im.name, n, thousandths(r.sentPerGrant))
		}
	}
	return sent, nil
}

// safeHandoff is runHandoff that fails on a grant made while the previous
// holder had not yet called release.
func safeHandoff(b *bench, c *cluster, n int, d time.Duration, take competitor, drain bool, what string) (handoffResult, error) {
	r, err := runHandoff(b.ctx, c, n, d, take, drain)
	if err != nil {
		return r, fmt.Errorf("%s, %d competitors: %w", what, n, err)
	}
	if r.unsafe > 0 {
		return r, fmt.Errorf("%s, %d competitors: SAFETY VIOLATION: %d grants returned before the previous holder called release", what, n, r.unsafe)
	}
	return r, nil
}

// aggregate is the median of each figure over the repetitions.
func aggregate(rs []handoffResult) handoffAgg {
	var per []float64
	var gaps, fromSent []latencies
	var most, fewest []int64
	var cmds, sent []int64
	var service, redisCPU []time.Duration
	for _, r := range rs {
		per, gaps, fromSent = append(per, r.perSec), append(gaps, r.gap), append(fromSent, r.fromSent)
		most, fewest = append(most, int64(r.most)), append(fewest, int64(r.fewest))
		cmds, sent = append(cmds, r.cmdsPerGrant), append(sent, r.sentPerGrant)
		service, redisCPU = append(service, r.serviceCPU), append(redisCPU, r.redisCPU)
	}
	return handoffAgg{perSec: median(per), gap: across(gaps), fromSent: across(fromSent),
		most: int(median(most)), fewest: int(median(fewest)), cmds: median(cmds), sent: median(sent),
		service: median(service), redis: median(redisCPU)}
}

// spread is most/fewest grants per competitor; +Inf when one had none.
func (g handoffAgg) spread() float64 {
	if g.fewest == 0 {
		return math.Inf(1)
	}
	return float64(g.most) / float64(g.fewest)
}

// handoffVerdicts is the "what this shows" paragraph, with every target
// met or missed, and whether any was missed.
func handoffVerdicts(ns []int, got map[handoffCell]handoffAgg, haveEtcd bool, etcdNote string) (string, bool) {
	var notes []string
	missed := false
	for _, n := range ns {
		l, r := got[handoffCell{implRetry, n}], got[handoffCell{implPolling, n}]
		speedup := float64(r.gap.p50) / float64(max(l.gap.p50, time.Microsecond))
		var miss []string
		for _, m := range []struct {
			bad  bool
			what string
		}{
			{l.gap.p50 > 150*time.Microsecond, "median gap"},
			{l.gap.p99 > 5*time.Millisecond, "p99 gap"},
			{speedup < 15, "speed-up over redsync"},
			{l.spread() > 2, "fairness"},
			{l.sent > 4000, "round trips per grant"},
		} {
			if m.bad {
				miss = append(miss, m.what)
			}
		}
		ok := len(miss) == 0
		missed = missed || !ok
		notes = append(notes, fmt.Sprintf("with %d competitors wake-and-retry `/v1` hands the lock over in %s ms at the median and %s ms at p99 "+
			"(targets ≤ 0.15 and ≤ 5 ms), %.0f× faster than redsync's polling (%s ms; target ≥ 15×), most/fewest %d/%d (target ≤ 2), "+
			"%s Redis round trips per grant (target ≤ 4) against redsync's %s: %s",
			n, ms(l.gap.p50), ms(l.gap.p99), speedup, ms(r.gap.p50), l.most, l.fewest, thousandths(l.sent), thousandths(r.sent), verdict(ok)+missedList(miss)))
	}
	l8, l64 := got[handoffCell{implRetry, 8}], got[handoffCell{implRetry, 64}]
	growth := float64(l64.sent) / float64(max(l8.sent, 1))
	shows := fmt.Sprintf("Competitors queue on one name across both replicas, hold it 1 ms and queue again only once "+
		"someone else has had it. No grant ever came before the previous holder called release (the run fails otherwise). "+
		"The gap runs from the release's answer to the next holder's answer, and counts 0 when the next holder hears first; "+
		"\"release sent → next answer\" runs from the moment the release is sent instead. "+
		"%s. Redis round trips per grant go from %s at 8 waiters to %s at 64 (%.2f×; target: no growth with the number of waiters): "+
		"a release wakes one waiter per replica, not all of them, while redsync's pollers each keep asking.",
		capitalise(strings.Join(notes, "; ")), thousandths(l8.sent), thousandths(l64.sent), growth)

	// Fair waiting: the targets are set for 64 competitors.
	f64, f8 := got[handoffCell{implFair, 64}], got[handoffCell{implFair, 8}]
	fairOK := f64.spread() <= 1.1 && f64.gap.p50 <= 100*time.Microsecond
	var fairMiss []string
	if f64.spread() > 1.1 {
		fairMiss = append(fairMiss, "fairness")
	}
	if f64.gap.p50 > 100*time.Microsecond {
		fairMiss = append(fairMiss, "median gap")
	}
	missed = missed || !fairOK
	shows += fmt.Sprintf("\n\nWith `\"fair\":true` the waiters queue in Redis and the releasing script grants the name to "+
		"the queue's head. With 64 competitors the most and fewest served got %d/%d grants (%.2f; target ≤ 1.1: %s) and "+
		"the gap is %s ms at the median (target ≤ 0.1 ms: %s), %s ms at p99; from the release being sent, the next holder "+
		"answers in %s ms at the median and %s ms at p99, where wake-and-retry takes %s and %s. With 8 competitors: "+
		"most/fewest %d/%d, gap %s ms at the median, %s ms from the release being sent. Overall: %s.",
		f64.most, f64.fewest, f64.spread(), verdict(f64.spread() <= 1.1), ms(f64.gap.p50), verdict(f64.gap.p50 <= 100*time.Microsecond),
		ms(f64.gap.p99), ms(f64.fromSent.p50), ms(f64.fromSent.p99), ms(l64.fromSent.p50), ms(l64.fromSent.p99),
		f8.most, f8.fewest, ms(f8.gap.p50), ms(f8.fromSent.p50), verdict(fairOK)+missedList(fairMiss))
	if haveEtcd {
		e64, e8 := got[handoffCell{implEtcd, 64}], got[handoffCell{implEtcd, 8}]
		shows += fmt.Sprintf(" etcd's lock service (%s), through its JSON gateway in the same run with a lease per competitor "+
			"(`/v3/lease/grant` once, then `/v3/lock/lock` and `/v3/lock/unlock`; at the end of a run its waiters are served rather "+
			"than called off, since etcd 3.4's gateway does not withdraw a lock request whose client went away), does %.0f grants/s with 64 competitors "+
			"against fair `/v1`'s %.0f, most/fewest %d/%d, a gap of %s ms at the median and %s ms from the release being sent; "+
			"with 8 competitors %.0f grants/s against fair `/v1`'s %.0f, most/fewest %d/%d, a gap of %s ms at the median and %s ms at p99.",
			etcdNote, e64.perSec, f64.perSec, e64.most, e64.fewest, ms(e64.gap.p50), ms(e64.fromSent.p50),
			e8.perSec, f8.perSec, e8.most, e8.fewest, ms(e8.gap.p50), ms(e8.gap.p99))
	} else {
		shows += " etcd's lock service was not measured: " + etcdNote + "."
	}

	var cost []string
	for _, n := range ns {
		r, f := got[handoffCell{implRetry, n}], got[handoffCell{implFair, n}]
		cost = append(cost, fmt.Sprintf("with %d competitors fair does %.0f grants/s against %.0f (%s) at %s Redis round trips "+
			"per grant against %s (%s)", n, f.perSec, r.perSec, ratio(f.perSec, r.perSec), thousandths(f.sent), thousandths(r.sent),
			ratio(float64(f.sent), float64(r.sent))))
	}
	shows += fmt.Sprintf("\n\nThe cost of fairness under contention (second table): %s. Without contention, "+
		"section 10 sets a fair acquire against a plain waiting one. The lockd rows' round trips per grant come from a "+
		"separate, untimed run of the same hand-off on the counted cluster (every round trip of both replicas through the "+
		"proxy of section 1, divided by the grants), so they include a fair waiter's replica renewing its place in the queue; "+
		"redsync's are counted in-process by a go-redis hook, with the same definition. Whether fair waiting should "+
		"become the default is weighed, from these figures and section 10's, under "+
		"[Should fair waiting be the default?](#should-fair-waiting-be-the-default) at the end of this page.", strings.Join(cost, "; "))
	return shows, missed
}

func missedList(miss []string) string {
	if len(miss) == 0 {
		return ""
	}
	return " (" + strings.Join(miss, ", ") + ")"
}
