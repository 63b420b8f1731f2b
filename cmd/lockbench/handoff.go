package main

import (
	"context"
	"errors"
	"fmt"
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

func (h *hotLock) releasedAt(i int, at time.Time) {
	h.mu.Lock()
	h.released[i] = at
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
	perSec         float64
	gap            latencies
	most, fewest   int
	cmdsPerGrant   int64 // thousandths, counting commands inside scripts
	sentPerGrant   int64 // thousandths: round trips
	unsafe, grants int
}

// competitor takes the lock (blocking until granted or ctx ends) and gives
// it back. take returns the release to call.
type competitor func(ctx context.Context, w int) (release func() error, err error)

const holdFor = time.Millisecond

func runHandoff(ctx context.Context, c *cluster, n int, d time.Duration, take competitor) (handoffResult, error) {
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
				if err := release(); err != nil {
					errs[w] = err
					cancel()
					return
				}
				h.releasedAt(i, time.Now())
				if !time.Now().Before(end) || !h.awaitOther(w) {
					return
				}
			}
		})
	}
	// Competitors still waiting when the time is up are called off.
	select {
	case <-time.After(time.Until(end)):
	case <-runCtx.Done():
	}
	after, uerr := c.usage(ctx)
	h.stop()
	cancel()
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err(), uerr)...); err != nil {
		return handoffResult{}, err
	}

	counts := make([]int, n)
	var gaps []time.Duration
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
		}
	}
	if grants == 0 {
		return handoffResult{}, fmt.Errorf("no grant in %v", d)
	}
	return handoffResult{
		perSec: float64(grants) / d.Seconds(), gap: summarise(gaps),
		most: slices.Max(counts), fewest: slices.Min(counts),
		cmdsPerGrant: after.sub(before).commands * 1000 / int64(grants),
		sentPerGrant: after.sub(before).sent * 1000 / int64(grants),
		unsafe:       h.unsafe, grants: grants,
	}, nil
}

// lockdCompetitor waits on /v1, competitor w on replica w%2, so every
// hand-off has even odds of crossing replicas.
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

// handoffCell names one cell of the hand-off table.
type handoffCell struct {
	impl string
	n    int // competitors
}

// handoffAgg is a cell's figures over its repetitions.
type handoffAgg struct {
	perSec       float64
	gap          latencies
	most, fewest int
	cmds, sent   int64 // thousandths per grant
}

var handoffImpls = []string{implLockd, "redsync default polling"}

func handoffScenario(b *bench) (section, error) {
	ns := []int{8, 64}
	res, err := timedHandoffs(b, ns)
	if err != nil {
		return section{}, err
	}
	countedSent, err := countedHandoffs(b, ns)
	if err != nil {
		return section{}, err
	}
	t := &table{header: []string{"client", "competitors", "grants/s", "gap p50", "gap p99", "gap max", "most/fewest per competitor", "Redis round trips/grant", "Redis cmds/grant"}}
	got := map[handoffCell]handoffAgg{}
	for _, n := range ns {
		for _, impl := range handoffImpls {
			g := aggregate(res[handoffCell{impl, n}])
			if impl == implLockd {
				// lockd talks to Redis on its own: only the proxy sees it.
				g.sent = countedSent[n]
			}
			got[handoffCell{impl, n}] = g
			t.add(impl, fmt.Sprint(n), fmt.Sprintf("%.0f", g.perSec), ms(g.gap.p50), ms(g.gap.p99), ms(g.gap.max),
				fmt.Sprintf("%d/%d", g.most, g.fewest), thousandths(g.sent), thousandths(g.cmds))
		}
	}
	shows, missed := handoffVerdicts(ns, got)
	return section{title: "2. Hot lock hand-off", tables: []*table{t}, shows: shows, explained: missed && !b.smoke}, nil
}

// timedHandoffs runs every cell on the single cluster, the repetitions
// interleaved.
func timedHandoffs(b *bench, ns []int) (map[handoffCell][]handoffResult, error) {
	c := b.single
	a := newAPI(64)
	defer a.close()
	rs := redsync.New(goredis.NewPool(c.rdb[0]))
	res := map[handoffCell][]handoffResult{}
	d := b.scaled(5 * time.Second)
	if b.smoke {
		d = 200 * time.Millisecond
	}
	for rep := range b.reps {
		for _, n := range ns {
			for _, impl := range handoffImpls {
				name := fmt.Sprintf("hot.%d.%d", rep, n)
				take := lockdCompetitor(a, c, name)
				if impl != implLockd {
					name += ".redsync"
					take = redsyncCompetitor(rs, name)
				}
				r, err := safeHandoff(b, c, n, d, take, impl)
				if err != nil {
					return nil, err
				}
				res[handoffCell{impl, n}] = append(res[handoffCell{impl, n}], r)
				b.logf("  rep %d %-24s n=%-3d %6.0f grants/s gap p50 %s ms", rep+1, impl, n, r.perSec, ms(r.gap.p50))
			}
		}
	}
	return res, nil
}

// countedHandoffs is lockd's round trips per grant (thousandths) by number
// of competitors, on the counted cluster: one run each, never timed.
func countedHandoffs(b *bench, ns []int) (map[int]int64, error) {
	cc, err := b.counted()
	if err != nil {
		return nil, err
	}
	a := newAPI(64)
	defer a.close()
	sent := map[int]int64{}
	for _, n := range ns {
		take := lockdCompetitor(a, cc, fmt.Sprintf("hot.counted.%d", n))
		r, err := safeHandoff(b, cc, n, b.scaled(2*time.Second), take, implLockd+", counted")
		if err != nil {
			return nil, err
		}
		sent[n] = r.sentPerGrant
		b.logf("  counted %-24s n=%-3d %s round trips/grant", implLockd, n, thousandths(r.sentPerGrant))
	}
	return sent, nil
}

// safeHandoff is runHandoff that fails on a grant made while the previous
// holder had not yet called release.
func safeHandoff(b *bench, c *cluster, n int, d time.Duration, take competitor, what string) (handoffResult, error) {
	r, err := runHandoff(b.ctx, c, n, d, take)
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
	var gaps []latencies
	var most, fewest []int64
	var cmds, sent []int64
	for _, r := range rs {
		per, gaps = append(per, r.perSec), append(gaps, r.gap)
		most, fewest = append(most, int64(r.most)), append(fewest, int64(r.fewest))
		cmds, sent = append(cmds, r.cmdsPerGrant), append(sent, r.sentPerGrant)
	}
	return handoffAgg{median(per), across(gaps), int(median(most)), int(median(fewest)), median(cmds), median(sent)}
}

// handoffVerdicts is the "what this shows" paragraph, with every target
// met or missed, and whether any was missed.
func handoffVerdicts(ns []int, got map[handoffCell]handoffAgg) (string, bool) {
	var notes []string
	missed := false
	for _, n := range ns {
		l, r := got[handoffCell{implLockd, n}], got[handoffCell{handoffImpls[1], n}]
		speedup := float64(r.gap.p50) / float64(max(l.gap.p50, time.Microsecond))
		fair := l.fewest > 0 && float64(l.most)/float64(l.fewest) <= 2
		var miss []string
		for _, m := range []struct {
			bad  bool
			what string
		}{
			{l.gap.p50 > 150*time.Microsecond, "median gap"},
			{l.gap.p99 > 5*time.Millisecond, "p99 gap"},
			{speedup < 15, "speed-up over redsync"},
			{!fair, "fairness"},
			{l.sent > 4000, "round trips per grant"},
		} {
			if m.bad {
				miss = append(miss, m.what)
			}
		}
		ok := len(miss) == 0
		missed = missed || !ok
		notes = append(notes, fmt.Sprintf("with %d competitors `/v1` hands the lock over in %s ms at the median and %s ms at p99 "+
			"(targets ≤ 0.15 and ≤ 5 ms), %.0f× faster than redsync's polling (%s ms; target ≥ 15×), most/fewest %d/%d (target ≤ 2), "+
			"%s Redis round trips per grant (target ≤ 4) against redsync's %s: %s",
			n, ms(l.gap.p50), ms(l.gap.p99), speedup, ms(r.gap.p50), l.most, l.fewest, thousandths(l.sent), thousandths(r.sent), verdict(ok)+missedList(miss)))
	}
	l8, l64 := got[handoffCell{implLockd, 8}], got[handoffCell{implLockd, 64}]
	growth := float64(l64.sent) / float64(max(l8.sent, 1))
	shows := fmt.Sprintf("Competitors queue on one name across both replicas, hold it 1 ms and queue again only once "+
		"someone else has had it. No grant ever came before the previous holder called release (the run fails otherwise). "+
		"%s. Redis round trips per grant go from %s at 8 waiters to %s at 64 (%.2f×; target: no growth with the number of waiters): "+
		"a release wakes one waiter per replica, not all of them, while redsync's pollers each keep asking. "+
		"lockd's round trips per grant come from a separate, untimed run of the same hand-off on the counted cluster "+
		"(every round trip of both replicas through the proxy of section 1, divided by the grants); redsync's are counted "+
		"in-process by a go-redis hook, with the same definition.",
		capitalise(strings.Join(notes, "; ")), thousandths(l8.sent), thousandths(l64.sent), growth)
	return shows, missed
}

func missedList(miss []string) string {
	if len(miss) == 0 {
		return ""
	}
	return " (" + strings.Join(miss, ", ") + ")"
}
