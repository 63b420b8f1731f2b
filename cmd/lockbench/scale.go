package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-distributed-lock/go-distributed-lock/internal/lock"
)

// scaleScenario: many waiters on one lock, and many held locks.
func scaleScenario(b *bench) (section, error) {
	waiters, held := 4000, 100_000
	if b.smoke {
		waiters, held = 100, 1000
	}
	wt, err := waitersTable(b, waiters)
	if err != nil {
		return section{}, err
	}
	ht, perLock, page, err := heldTable(b, held)
	if err != nil {
		return section{}, err
	}
	shows := fmt.Sprintf("%d requests wait on one lock, half on each replica, then drain one grant at a time (each waiter "+
		"releases at once). %s With %d locks held, Redis spends %d bytes per lock (the lock key, which holds its grant, "+
		"and a share of the per-slot fence counters), and a page of 100 from `GET /v1/locks` takes %s ms at the median.",
		waiters, wt.note, held, perLock, ms(page))
	return section{title: "7. Scale", tables: []*table{wt.t, ht}, shows: shows}, nil
}

type waitersResult struct {
	t    *table
	note string
}

// replicaSnap is one replica's footprint at a moment.
type replicaSnap struct {
	rss        int64
	goroutines float64
	conns      int // to Redis
}

func waitersTable(b *bench, n int) (waitersResult, error) {
	ctx, c := b.ctx, b.single
	a := newAPI(n)
	defer a.close()
	name := "scale.waiters"
	holder, err := a.acquire(ctx, c.urls[0], name, time.Minute, 0)
	if err != nil {
		return waitersResult{}, err
	}
	before, err := snapshot(ctx, a, c)
	if err != nil {
		return waitersResult{}, err
	}
	w := startWaiters(ctx, a, c, name, n)
	if err := awaitWaiters(ctx, a, c, n); err != nil {
		return waitersResult{}, err
	}
	during, err := snapshot(ctx, a, c)
	if err != nil {
		return waitersResult{}, err
	}
	released := time.Now()
	if err := release(ctx, holder); err != nil {
		return waitersResult{}, err
	}
	lastGrant, err := w.wait()
	if err != nil {
		return waitersResult{}, err
	}
	return waitersReport(n, before, during, lastGrant.Sub(released)), nil
}

// snapshot is every replica's footprint now.
func snapshot(ctx context.Context, a *api, c *cluster) ([]replicaSnap, error) {
	var out []replicaSnap
	for i, p := range c.lockd {
		var s replicaSnap
		var err error
		if s.rss, err = rssBytes(p.Pid()); err != nil {
			return nil, err
		}
		if s.goroutines, err = a.metric(ctx, c.urls[i], "go_goroutines"); err != nil {
			return nil, err
		}
		if s.conns, err = tcpConns(p.Pid(), c.addrs[0]); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// waiters are n requests waiting on one lock; each releases at once when
// granted.
type waiters struct {
	wg        sync.WaitGroup
	mu        sync.Mutex
	firstErr  error
	lastGrant time.Time
}

// startWaiters sends n waiting acquires of name, half on each replica.
func startWaiters(ctx context.Context, a *api, c *cluster, name string, n int) *waiters {
	w := &waiters{}
	for i := range n {
		w.wg.Go(func() {
			l, err := a.acquire(ctx, c.urls[i%2], name, 10*time.Second, 2*time.Minute)
			if err == nil {
				err = release(ctx, l)
			}
			w.mu.Lock()
			defer w.mu.Unlock()
			w.firstErr = cmpErr(w.firstErr, err)
			w.lastGrant = time.Now()
		})
	}
	return w
}

// wait waits for every waiter and returns when the last was served.
func (w *waiters) wait() (time.Time, error) {
	w.wg.Wait()
	return w.lastGrant, w.firstErr
}

// awaitWaiters returns once all n are waiting: the replicas'
// lockd_waiters add up to n.
func awaitWaiters(ctx context.Context, a *api, c *cluster, n int) error {
	return waitFor(ctx, fmt.Sprintf("%d waiters", n), func() error {
		var total float64
		for _, u := range c.urls {
			v, err := a.metric(ctx, u, "lockd_waiters")
			if err != nil {
				return err
			}
			total += v
		}
		if int(total) < n {
			return fmt.Errorf("%v of %d waiting", total, n)
		}
		return nil
	})
}

// waitersReport is the table and the verdicts of n waiters.
func waitersReport(n int, before, during []replicaSnap, drain time.Duration) waitersResult {
	t := &table{header: []string{"replica", "waiters", "RSS before → waiting (MiB)", "lockd memory per waiter", "goroutines before → waiting", "Redis connections before → waiting", "drain all (s)"}}
	var perWaiter []string
	var worst int64
	for i := range during {
		w := n / 2
		if i == 0 {
			w = n - n/2
		}
		per := (during[i].rss - before[i].rss) / int64(w)
		worst = max(worst, per)
		perWaiter = append(perWaiter, fmt.Sprintf("%.1f KB", float64(per)/1000))
		t.add(fmt.Sprintf("lockd-%d", i+1), fmt.Sprint(w),
			fmt.Sprintf("%.1f → %.1f", float64(before[i].rss)/(1<<20), float64(during[i].rss)/(1<<20)),
			fmt.Sprintf("%.1f KB", float64(per)/1000),
			fmt.Sprintf("%.0f → %.0f", before[i].goroutines, during[i].goroutines),
			fmt.Sprintf("%d → %d", before[i].conns, during[i].conns),
			fmt.Sprintf("%.1f", drain.Seconds()))
	}
	// go-redis opens at most 10 connections per GOMAXPROCS for lock calls;
	// the replicas run on this machine, so that is their bound, plus the
	// subscriber and the events stream's own pool (its blocking reader,
	// and the catch-up and expiry reads, which may run beside it).
	bound := 10*runtime.NumCPU() + 1 + lock.EventsPoolSize
	most := max(during[0].conns, during[1].conns)
	note := fmt.Sprintf("Each waiter costs %s of lockd memory (target ≤ 50 KB: %s; RSS, so it includes the HTTP "+
		"connection and its buffers), and all %d were served %.1f s after the holder released. Redis connections "+
		"per replica peak at %d against a bound of %d (go-redis's pool of 10 per core, the one subscriber and the events stream's pool of %d; target: %s): "+
		"waiters share the pool and do not hold a connection while they wait.",
		strings.Join(perWaiter, " and "), verdict(worst <= 50_000), n, drain.Seconds(), most, bound, lock.EventsPoolSize, verdict(most <= bound))
	return waitersResult{t: t, note: note}
}

func heldTable(b *bench, n int) (*table, int64, time.Duration, error) {
	ctx, c := b.ctx, b.single
	const conc = 32
	a := newAPI(conc)
	defer a.close()
	mem0, err := infoField(ctx, c.rdb[0], "memory", "used_memory")
	if err != nil {
		return nil, 0, 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, conc)
	t0 := time.Now()
	for w := range conc {
		wg.Go(func() {
			for i := w; i < n && errs[w] == nil && ctx.Err() == nil; i += conc {
				_, errs[w] = a.acquire(ctx, c.urls[i%2], fmt.Sprintf("held.%07d", i), 30*time.Minute, 0)
			}
		})
	}
	wg.Wait()
	fill := time.Since(t0)
	for _, err := range append(errs, ctx.Err()) {
		if err != nil {
			return nil, 0, 0, err
		}
	}
	mem1, err := infoField(ctx, c.rdb[0], "memory", "used_memory")
	if err != nil {
		return nil, 0, 0, err
	}
	perLock := (mem1 - mem0) / int64(n)

	// Pages: the first one, and the next ones by their cursors.
	var lat []time.Duration
	cursor := ""
	lc, err := a.lockd(c.urls[1])
	if err != nil {
		return nil, 0, 0, err
	}
	pages := 50
	if b.smoke {
		pages = 5
	}
	for range pages {
		t0 := time.Now()
		page, err := lc.List(ctx, "held.", 100, cursor)
		if err != nil {
			return nil, 0, 0, err
		}
		lat = append(lat, time.Since(t0))
		cursor = page.NextCursor
	}
	l := summarise(lat)
	t := &table{header: []string{"held locks", "filled in (s)", "Redis used_memory per lock", "GET /v1/locks?limit=100 p50", "p99", "max"}}
	t.add(fmt.Sprint(n), fmt.Sprintf("%.1f", fill.Seconds()), fmt.Sprintf("%d B", perLock), ms(l.p50), ms(l.p99), ms(l.max))
	// They are ours alone and the scenario is over: free the memory.
	if err := c.rdb[0].FlushDB(ctx).Err(); err != nil {
		return nil, 0, 0, err
	}
	return t, perLock, l.p50, nil
}

// tcpConns counts pid's TCP connections to addr (a 127.0.0.1 host:port),
// matching the socket inodes of its open files against /proc/net/tcp.
func tcpConns(pid int, addr string) (int, error) {
	fds, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		return 0, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil {
			if ino, ok := strings.CutPrefix(l, "socket:["); ok {
				inodes[strings.TrimSuffix(ino, "]")] = true
			}
		}
	}
	_, port, _ := strings.Cut(addr, ":")
	p, err := strconv.Atoi(port)
	if err != nil {
		return 0, err
	}
	remote := fmt.Sprintf("0100007F:%04X", p) // 127.0.0.1, as /proc/net/tcp spells it
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// sl local rem st ... inode (field 9); st 01 is ESTABLISHED.
		if len(f) > 9 && f[2] == remote && f[3] == "01" && inodes[f[9]] {
			n++
		}
	}
	return n, sc.Err()
}
