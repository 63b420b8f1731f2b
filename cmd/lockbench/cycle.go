package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redsync/redsync/v4"
	"github.com/go-redsync/redsync/v4/redis/goredis/v9"
	"github.com/redis/go-redis/v9"
)

// cycleFunc takes and gives back the lock name once.
type cycleFunc func(ctx context.Context, name string) error

// compareAndDelete is the floor's release: delete the key only if it still
// holds our token, in one step.
const compareAndDelete = `if redis.call("GET", KEYS[1]) == ARGV[1] then return redis.call("DEL", KEYS[1]) else return 0 end`

// floorCycle is the least any Redis lock can do: one SET NX PX and one
// compare-and-delete EVAL, with a random token as every lock needs.
func floorCycle(rdb *redis.Client) cycleFunc {
	return func(ctx context.Context, name string) error {
		key, token := "lock:"+name, rand.Text()
		ok, err := rdb.SetNX(ctx, key, token, 10*time.Second).Result()
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("floor: %s taken", name)
		}
		return rdb.Eval(ctx, compareAndDelete, []string{key}, token).Err()
	}
}

// redsyncCycle is what an application that embeds redsync does.
func redsyncCycle(rdb *redis.Client) cycleFunc {
	rs := redsync.New(goredis.NewPool(rdb))
	return func(ctx context.Context, name string) error {
		mu := rs.NewMutex("lock:" + name)
		if err := mu.LockContext(ctx); err != nil {
			return err
		}
		_, err := mu.UnlockContext(ctx)
		return err
	}
}

func lockdCycle(a *api, base string) cycleFunc {
	return func(ctx context.Context, name string) error {
		l, err := a.acquire(ctx, base, name, 10*time.Second, 0)
		if err != nil {
			return err
		}
		return a.release(ctx, base, name, l.Token)
	}
}

// cycleResult is one repetition of one cell.
type cycleResult struct {
	opsPerSec float64
	lat       latencies
	per       usage // per cycle
}

var runSeq atomic.Int64

// runCycles runs fn from conc goroutines for d, each cycle on a fresh name,
// after a short unmeasured warm-up that opens the connections.
func runCycles(ctx context.Context, c *cluster, conc int, d time.Duration, fn cycleFunc) (cycleResult, error) {
	prefix := fmt.Sprintf("bench.%d", runSeq.Add(1))
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
					if err := fn(ctx, fmt.Sprintf("%s.%d.%d", prefix, w, i)); err != nil {
						mu.Lock()
						firstErr = cmpErr(firstErr, err)
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				total += len(mine)
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
	return cycleResult{opsPerSec: float64(n) / took.Seconds(), lat: summarise(lat), per: after.sub(before).per(n)}, nil
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
	return usage{commands: u.commands * 1000 / int64(n), sent: u.sent * 1000 / int64(n), redisCPU: u.redisCPU / k, lockdCPU: u.lockdCPU / k, self: u.self / k}
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
	var rc, lc, sc []time.Duration
	for _, r := range c.reps {
		cmd, sent = append(cmd, r.per.commands), append(sent, r.per.sent)
		rc, lc, sc = append(rc, r.per.redisCPU), append(lc, r.per.lockdCPU), append(sc, r.per.self)
	}
	return usage{median(cmd), median(sent), median(rc), median(lc), median(sc)}
}

func thousandths(n int64) string { return fmt.Sprintf("%.2f", float64(n)/1000) }

const (
	implFloor   = "floor: SET NX PX + EVAL"
	implRedsync = "redsync Lock+Unlock"
	implLockd   = "lockd /v1 over HTTP"
)

func cycleScenario(b *bench) (section, error) {
	c := b.single
	concs := []int{1, 16, 64}
	a := newAPI(64)
	defer a.close()
	impls := []struct {
		name string
		fn   cycleFunc
	}{
		{implFloor, floorCycle(c.rdb[0])},
		{implRedsync, redsyncCycle(c.rdb[0])},
		{implLockd, lockdCycle(a, c.urls[0])},
	}
	cells := map[string]*cell{}
	key := func(impl string, conc int) string { return fmt.Sprintf("%s/%d", impl, conc) }
	d := b.scaled(3 * time.Second)
	if b.smoke {
		d = 80 * time.Millisecond
	}
	for rep := range b.reps {
		for _, conc := range concs {
			for _, im := range impls {
				r, err := runCycles(b.ctx, c, conc, d, im.fn)
				if err != nil {
					return section{}, fmt.Errorf("%s at %d: %w", im.name, conc, err)
				}
				k := key(im.name, conc)
				if cells[k] == nil {
					cells[k] = &cell{name: im.name, conc: conc}
				}
				cells[k].reps = append(cells[k].reps, r)
				b.logf("  rep %d %-26s c=%-3d %8.0f ops/s", rep+1, im.name, conc, r.opsPerSec)
			}
		}
	}
	t := &table{header: []string{"client", "concurrency", "cycles/s", "× floor", "p50", "p99", "max",
		"Redis round trips/cycle", "Redis cmds/cycle", "lockd CPU/cycle", "bench CPU/cycle", "Redis CPU/cycle"}}
	for _, conc := range concs {
		floor := cells[key(implFloor, conc)].ops()
		for _, im := range impls {
			ce := cells[key(im.name, conc)]
			l, u := ce.lat(), ce.cost()
			t.add(im.name, fmt.Sprint(conc), fmt.Sprintf("%.0f", ce.ops()), ratio(ce.ops(), floor),
				ms(l.p50), ms(l.p99), ms(l.max), thousandths(u.sent), thousandths(u.commands), us(u.lockdCPU), us(u.self), us(u.redisCPU))
		}
	}
	lockd16, floor16, rs16 := cells[key(implLockd, 16)], cells[key(implFloor, 16)], cells[key(implRedsync, 16)]
	r := lockd16.ops() / floor16.ops()
	met := verdict(r >= 0.5)
	shows := fmt.Sprintf("Every cycle takes and releases a fresh name, so nobody waits: this is the cost of the "+
		"service itself. At concurrency 16, `/v1` does %.0f cycles/s, %.2f× the floor (target ≥ 0.5×: %s) and "+
		"%.2f× redsync in-process (%.0f/s). It makes %s Redis round trips per cycle (%s commands counting those "+
		"inside scripts) where the floor makes %s and redsync %s, and spends %s µs of lockd CPU per cycle; the floor's whole cost is %s µs of benchmark CPU "+
		"and %s µs of Redis CPU. On two shared cores the HTTP client, two lockd replicas and Redis compete for "+
		"the same CPU, so CPU per cycle, not latency, is what decides the ratio.",
		lockd16.ops(), r, met, lockd16.ops()/rs16.ops(), rs16.ops(), thousandths(lockd16.cost().sent), thousandths(lockd16.cost().commands),
		thousandths(floor16.cost().sent), thousandths(rs16.cost().sent), us(lockd16.cost().lockdCPU),
		us(floor16.cost().self), us(floor16.cost().redisCPU))
	sec := section{title: "1. Uncontended lock cycle", tables: []*table{t}, shows: shows}
	if r < 0.5 && !b.smoke {
		sec.findings = cycleFinding
	}
	return sec, nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
