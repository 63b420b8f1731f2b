package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// locker takes the lock name and returns how to give it back.
type locker func(ctx context.Context, name string) (release func(context.Context) error, err error)

// cycle takes name and gives it back at once.
func (l locker) cycle(ctx context.Context, name string) error {
	release, err := l(ctx, name)
	if err != nil {
		return err
	}
	return release(ctx)
}

// compareAndDelete is the floor's release: delete the key only if it still
// holds our token, in one step.
const compareAndDelete = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`

// floorLocker is the least any Redis lock can do: one SET NX PX and one
// compare-and-delete EVAL, with a random token as every lock needs.
func floorLocker(rdb *redis.Client) locker {
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		key, token := "lock:"+name, rand.Text()
		ok, err := rdb.SetNX(ctx, key, token, 10*time.Second).Result()
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("floor: %s taken", name)
		}
		return func(ctx context.Context) error {
			return rdb.Eval(ctx, compareAndDelete, []string{key}, token).Err()
		}, nil
	}
}

// redsyncLocker is what an application that embeds redsync does.
func redsyncLocker(rdb *redis.Client) locker {
	rs := redsync.New(goredis.NewPool(rdb))
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		mu := rs.NewMutex("lock:" + name)
		if err := mu.LockContext(ctx); err != nil {
			return nil, err
		}
		return func(ctx context.Context) error {
			_, err := mu.UnlockContext(ctx)
			return err
		}, nil
	}
}

func lockdLocker(a *api, base string) locker {
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		l, err := a.acquire(ctx, base, name, 10*time.Second, 0)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return release(ctx, l) }, nil
	}
}

// cycleResult is one repetition of one cell.
type cycleResult struct {
	opsPerSec float64
	lat       latencies
	per       usage // per cycle
	total     usage // of the whole run, each node's figures included
	// prefix and done say which names the run used: worker w took
	// cycleName(prefix, w, 1) to cycleName(prefix, w, done[w]).
	prefix string
	done   []int
}

// names calls yield with every name the run took.
func (r cycleResult) names(yield func(string) bool) {
	for w, n := range r.done {
		for i := 1; i <= n; i++ {
			if !yield(cycleName(r.prefix, w, i)) {
				return
			}
		}
	}
}

func cycleName(prefix string, w, i int) string { return fmt.Sprintf("%s.%d.%d", prefix, w, i) }

var runSeq atomic.Int64

// runCycles runs fn from conc goroutines for d, each cycle on a fresh name,
// after a short unmeasured warm-up that opens the connections.
func runCycles(ctx context.Context, c *cluster, conc int, d time.Duration, fn locker) (cycleResult, error) {
	prefix := fmt.Sprintf("bench.%d", runSeq.Add(1))
	done := make([]int, conc)
	once := func(d time.Duration, lat *[]time.Duration) (int, error) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		total := 0
		end := time.Now().Add(d)
		for w := range conc {
			wg.Go(func() {
				var mine []time.Duration
				i := 0
				for time.Now().Before(end) && ctx.Err() == nil {
					i++
					t0 := time.Now()
					if err := fn.cycle(ctx, cycleName(prefix, w, i)); err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				total += len(mine)
				done[w] = len(mine)
				if lat != nil {
					*lat = append(*lat, mine...)
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		return total, cmpErr(firstErr, ctx.Err())
	}
	if _, err := once(min(d/5, 300*time.Millisecond), nil); err != nil {
		return cycleResult{}, err
	}
	before, err := c.usage(ctx)
	if err != nil {
		return cycleResult{}, err
	}
	var lat []time.Duration
	t0 := time.Now()
	n, err := once(d, &lat)
	took := time.Since(t0)
	if err != nil {
		return cycleResult{}, err
	}
	after, err := c.usage(ctx)
	if err != nil {
		return cycleResult{}, err
	}
	if n == 0 {
		return cycleResult{}, fmt.Errorf("no cycle completed in %v", d)
	}
	total := after.sub(before)
	return cycleResult{opsPerSec: float64(n) / took.Seconds(), lat: summarise(lat), per: total.per(n), total: total,
		prefix: prefix, done: done}, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// per divides a usage by a count of operations.
func (u usage) per(n int) usage {
	k := time.Duration(n)
	return usage{commands: u.commands * 1000 / int64(n), sent: u.sent * 1000 / int64(n), redisCPU: u.redisCPU / k,
		serviceCPU: u.serviceCPU / k, self: u.self / k, standbyCPU: u.standbyCPU / k}
}

// cell gathers one cell's repetitions.
type cell struct {
	name string
	conc int
	reps []cycleResult
}

func (c *cell) ops() float64 {
	v := make([]float64, len(c.reps))
	for i, r := range c.reps {
		v[i] = r.opsPerSec
	}
	return median(v)
}

func (c *cell) lat() latencies {
	var l []latencies
	for _, r := range c.reps {
		l = append(l, r.lat)
	}
	return across(l)
}

// cost is the median per-cycle usage; commands and sent are in thousandths.
func (c *cell) cost() usage {
	var cmd, sent []int64
	var rc, lc, sc, st []time.Duration
	for _, r := range c.reps {
		cmd, sent = append(cmd, r.per.commands), append(sent, r.per.sent)
		rc, lc, sc = append(rc, r.per.redisCPU), append(lc, r.per.serviceCPU), append(sc, r.per.self)
		st = append(st, r.per.standbyCPU)
	}
	return usage{commands: median(cmd), sent: median(sent), redisCPU: median(rc), serviceCPU: median(lc), self: median(sc), standbyCPU: median(st)}
}

func thousandths(n int64) string { return fmt.Sprintf("%.2f", float64(n)/1000) }

const (
	implFloor   = "floor: SET NX PX + EVAL"
	implRedsync = "redsync Lock+Unlock"
	implNaive   = "naive Gin + redsync service"
	implLockd   = "lockd /v1 over HTTP"
	implEtcd    = "etcd lock service (JSON gateway)"
)

// impl is one row of the cycle table.
type impl struct {
	name string
	lock locker
}

func cycleScenario(b *bench) (section, error) {
	c := b.single
	concs := []int{1, 16, 64}
	a := newAPI(64)
	defer a.close()
	impls := []impl{
		{implFloor, floorLocker(c.rdb[0])},
		{implRedsync, redsyncLocker(c.rdb[0])},
		{implNaive, naiveLocker(a, c.naiveURL)},
		{implLockd, lockdLocker(a, c.urls[0])},
	}
	etcd, etcdNote := startEtcd(b.ctx, b.dir)
	if etcd != nil {
		defer etcd.stop()
		impls = append(impls, impl{implEtcd, etcd.locker(a)})
		c.peerPIDs = []int{etcd.p.Pid()}
		defer func() { c.peerPIDs = nil }()
		etcdNote = fmt.Sprintf("version %s, one member with its data on tmpfs under /dev/shm", etcd.version(b.ctx))
	}
	b.logf("  etcd: %s", etcdNote)
	cells := map[string]*cell{}
	key := func(impl string, conc int) string { return fmt.Sprintf("%s/%d", impl, conc) }
	d := b.scaled(3 * time.Second)
	if b.smoke {
		d = 80 * time.Millisecond
	}
	for rep := range b.reps {
		for _, conc := range concs {
			for _, im := range impls {
				r, err := runCycles(b.ctx, c, conc, d, im.lock)
				if err != nil {
					return section{}, fmt.Errorf("%s at %d: %w", im.name, conc, err)
				}
				k := key(im.name, conc)
				if cells[k] == nil {
					cells[k] = &cell{name: im.name, conc: conc}
				}
				cells[k].reps = append(cells[k].reps, r)
				b.logf("  rep %d %-32s c=%-3d %8.0f ops/s", rep+1, im.name, conc, r.opsPerSec)
			}
		}
	}
	t := &table{header: []string{"client", "concurrency", "cycles/s", "× floor", "p50", "p99", "max",
		"Redis cmds/cycle", "service CPU/cycle", "bench CPU/cycle", "Redis CPU/cycle"}}
	for _, conc := range concs {
		floor := cells[key(implFloor, conc)].ops()
		for _, im := range impls {
			ce := cells[key(im.name, conc)]
			l, u := ce.lat(), ce.cost()
			cmds, redisCPU := thousandths(u.commands), us(u.redisCPU)
			if im.name == implEtcd {
				cmds, redisCPU = "–", "–" // etcd does not use Redis
			}
			t.add(im.name, fmt.Sprint(conc), fmt.Sprintf("%.0f", ce.ops()), ratio(ce.ops(), floor),
				ms(l.p50), ms(l.p99), ms(l.max), cmds, us(u.serviceCPU), us(u.self), redisCPU)
		}
	}
	lockd16, floor16, rs16, naive16 := cells[key(implLockd, 16)], cells[key(implFloor, 16)], cells[key(implRedsync, 16)], cells[key(implNaive, 16)]
	r := lockd16.ops() / floor16.ops()
	vsNaive := lockd16.ops() / naive16.ops()
	// etcd's comparison, or why it is missing.
	vsEtcd := " (etcd's lock service was not measured: " + etcdNote + ")"
	aboutEtcd := ""
	if etcd != nil {
		e16 := cells[key(implEtcd, 16)]
		vsEtcd = fmt.Sprintf(", %.2f× etcd's lock service through its JSON gateway (%.0f/s; target ≥ 1.5×: %s)",
			lockd16.ops()/e16.ops(), e16.ops(), verdict(lockd16.ops() >= 1.5*e16.ops()))
		aboutEtcd = " etcd (" + etcdNote + ") is used as a program without an etcd client library would use it: " +
			"`POST /v3/lease/grant` once per client, then `/v3/lock/lock` and `/v3/lock/unlock`."
	}
	shows := fmt.Sprintf("Every cycle takes and releases a fresh name, so nobody waits: this is the cost of the "+
		"service itself. At concurrency 16, `/v1` does %.0f cycles/s: %.2f× the floor (target ≥ 0.5×: %s), "+
		"%.2f× the naive Gin + redsync service (%.0f/s; target ≥ 0.8×: %s)%s, and %.2f× redsync in-process (%.0f/s). "+
		"It runs %s Redis commands per cycle (counting those inside scripts) where the floor runs %s, and spends %s µs "+
		"of lockd CPU per cycle where the naive service spends %s; the floor's whole cost is %s µs of benchmark CPU "+
		"and %s µs of Redis CPU. On two shared cores the HTTP client, the service and Redis compete for "+
		"the same CPU, so CPU per cycle, not latency, is what decides the ratios. The naive service "+
		"(cmd/lockbench/naive: `gin.Default()`, one redsync mutex per call, `POST /acquire/:name` and "+
		"`POST /release/:name`) runs as its own process against the same redis-server.%s Service CPU is "+
		"that of lockd's two replicas, the naive service or etcd, whichever the row measures.",
		lockd16.ops(), r, verdict(r >= 0.5), vsNaive, naive16.ops(), verdict(vsNaive >= 0.8), vsEtcd,
		lockd16.ops()/rs16.ops(), rs16.ops(), thousandths(lockd16.cost().commands), thousandths(floor16.cost().commands),
		us(lockd16.cost().serviceCPU), us(naive16.cost().serviceCPU), us(floor16.cost().self), us(floor16.cost().redisCPU), aboutEtcd)

	trips, tripsNote, err := tripsTable(b)
	if err != nil {
		return section{}, err
	}
	sec := section{title: "1. Uncontended lock cycle", tables: []*table{t, trips}, shows: shows + "\n\n" + tripsNote}
	sec.explained = r < 0.5 && !b.smoke
	return sec, nil
}

// trips is the round trips (counted by the proxy) and Redis commands of one
// acquire and of one release.
type trips struct {
	acquire, release         float64
	cmdsAcquire, cmdsRelease float64
	// opsPerSec is the acquires and releases per second while counted:
	// a rate of background round trips adds its quotient to the figures.
	opsPerSec float64
	// calls are the commands the nodes ran meanwhile, by name.
	calls map[string]int64
}

// countTrips takes n fresh names with lock from conc goroutines, then
// releases them all, and divides what the proxies counted in each phase.
// A warm-up first opens the connections a run at conc needs, so that no
// connection set-up (HELLO, CLIENT SETINFO, SCRIPT LOAD) is counted: n
// cycles at four times conc, since over two replicas and several masters
// a run at conc now and then has more requests in flight to one master
// than it had before, and its pool grows.
func countTrips(ctx context.Context, c *cluster, lock locker, n, conc int) (trips, error) {
	prefix := fmt.Sprintf("trips.%d.", runSeq.Add(1))
	if err := forEach(ctx, max(4*conc, n), 4*conc, func(i int) error {
		return lock.cycle(ctx, fmt.Sprintf("%swarm.%d", prefix, i))
	}); err != nil {
		return trips{}, err
	}
	releases := make([]func(context.Context) error, n)
	var took time.Duration
	t := trips{calls: map[string]int64{}}
	phase := func(do func(i int) error) (float64, float64, error) {
		t0 := time.Now()
		defer func() { took += time.Since(t0) }()
		trips0 := c.proxyTrips()
		before, err := nodeStats(ctx, c.rdb)
		if err != nil {
			return 0, 0, err
		}
		if err := forEach(ctx, n, conc, do); err != nil {
			return 0, 0, err
		}
		after, err := nodeStats(ctx, c.rdb)
		if err != nil {
			return 0, 0, err
		}
		d := sum(after).sub(sum(before))
		for cmd, v := range d.calls {
			t.calls[cmd] += v
		}
		return float64(c.proxyTrips()-trips0) / float64(n), float64(d.total()) / float64(n), nil
	}
	var err error
	t.acquire, t.cmdsAcquire, err = phase(func(i int) error {
		var err error
		releases[i], err = lock(ctx, fmt.Sprintf("%s%d", prefix, i))
		return err
	})
	if err != nil {
		return t, err
	}
	t.release, t.cmdsRelease, err = phase(func(i int) error { return releases[i](ctx) })
	t.opsPerSec = float64(2*n) / took.Seconds()
	return t, err
}

// forEach calls do(0) to do(n-1) from conc goroutines and returns the first
// error; after one, the remaining calls are not made.
func forEach(ctx context.Context, n, conc int, do func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, conc)
	for w := range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if errs[w] = do(i); errs[w] != nil {
					next.Store(int64(n)) // the others stop too
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// tripsTable counts, on the counted cluster, the Redis round trips of one
// acquire and of one release for every Redis-backed client of the cycle
// table, and says how.
func tripsTable(b *bench) (*table, string, error) {
	c, err := b.counted()
	if err != nil {
		return nil, "", err
	}
	a := newAPI(16)
	defer a.close()
	n, conc := 2000, 16
	idle := time.Second
	if b.smoke {
		n, idle = 100, 100*time.Millisecond
	}
	// What the two idle replicas and the naive service send by
	// themselves, to show that it does not move the figures.
	background := idleTrips(c, idle)

	impls := []impl{
		{implFloor, floorLocker(c.viaProxy)},
		{implRedsync, redsyncLocker(c.viaProxy)},
		{implNaive, naiveLocker(a, c.naiveURL)},
		{implLockd, lockdLocker(a, c.urls[0])},
	}
	t := &table{
		title:  fmt.Sprintf("Redis round trips, counted by a TCP proxy in front of Redis (%d acquires, then their %d releases, at concurrency %d):", n, n, conc),
		header: []string{"client", "round trips/acquire", "round trips/release", "Redis cmds/acquire", "Redis cmds/release"},
	}
	got := map[string]trips{}
	for _, im := range impls {
		tr, err := countTrips(b.ctx, c, im.lock, n, conc)
		if err != nil {
			return nil, "", fmt.Errorf("counting %s: %w", im.name, err)
		}
		got[im.name] = tr
		t.add(im.name, fmt.Sprintf("%.2f", tr.acquire), fmt.Sprintf("%.2f", tr.release), fmt.Sprintf("%.2f", tr.cmdsAcquire), fmt.Sprintf("%.2f", tr.cmdsRelease))
		b.logf("  round trips %-32s acquire %.2f release %.2f", im.name, tr.acquire, tr.release)
	}
	l, nv := got[implLockd], got[implNaive]
	note := fmt.Sprintf("Round trips are counted from outside the service, by a TCP proxy between it and Redis "+
		"(cmd/lockbench/proxy.go; lockd is never asked): on each connection, Redis's first answer after the client "+
		"has sent something counts once, so a command, a script or a pipeline sent in one write is one round trip, "+
		"and what Redis pushes unasked (a PUBLISH reaching a subscriber) is none. The floor and redsync use a "+
		"go-redis client through the same proxy. On one node, a `/v1` acquire makes %.2f round trips (target 1: %s) "+
		"and a release %.2f (target 1: %s); the naive service makes %.2f and %.2f. While idle, the replicas and the "+
		"naive service made %.1f round trips/s through the proxy, included in the figures, not subtracted.",
		l.acquire, verdict(l.acquire < 1.005), l.release, verdict(l.release < 1.005), nv.acquire, nv.release, background)
	return t, note, nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
