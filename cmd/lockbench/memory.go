package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/go-distributed-lock/go-distributed-lock/client"
)

// memoryScenario: what a held lock costs Redis, and what a released one
// leaves behind there.
func memoryScenario(b *bench) (section, error) {
	ctx, c := b.ctx, b.single
	rdb := c.rdb[0]
	n := 20_000
	if b.smoke {
		n = 500
	}
	const conc = 32
	a := newAPI(conc)
	defer a.close()
	prefix := fmt.Sprintf("mem.%d.", runSeq.Add(1))
	name := func(i int) string { return fmt.Sprintf("%s%05d", prefix, i) }

	// Warm up at the same concurrency first, so that the connections lockd
	// opens to Redis (each with its buffers) are not counted as locks.
	err := forEach(ctx, 4*conc, conc, func(i int) error {
		l, err := a.acquire(ctx, c.urls[i%2], name(n+i), time.Second, 0)
		if err != nil {
			return err
		}
		return release(ctx, l)
	})
	if err != nil {
		return section{}, err
	}
	before, err := redisMemory(ctx, rdb)
	if err != nil {
		return section{}, err
	}
	leases := make([]*client.Lease, n)
	err = forEach(ctx, n, conc, func(i int) error {
		// No owner: the acquire body has none.
		l, err := a.acquire(ctx, c.urls[i%2], name(i), 30*time.Minute, 0)
		leases[i] = l
		return err
	})
	if err != nil {
		return section{}, err
	}
	held, err := redisMemory(ctx, rdb)
	if err != nil {
		return section{}, err
	}
	err = forEach(ctx, n, conc, func(i int) error { return release(ctx, leases[i]) })
	if err != nil {
		return section{}, err
	}
	left, err := keysContaining(ctx, rdb, prefix)
	if err != nil {
		return section{}, err
	}

	perLock := float64(held.used-before.used) / float64(n)
	streams := float64(held.streams-before.streams) / float64(n)
	counters := float64(held.counterBytes-before.counterBytes) / float64(n)
	own := perLock - streams - counters
	newCounters := held.counters - before.counters
	keys := float64(held.keys-before.keys-newCounters) / float64(n)
	t := &table{header: []string{"held locks", "Redis used_memory per lock", "of which streams", "of which fence counters",
		"per held lock without them", "keys per held lock", "fence counters (new)", "keys left naming a released lock"}}
	t.add(fmt.Sprint(n), fmt.Sprintf("%.0f B", perLock), fmt.Sprintf("%.0f B", streams), fmt.Sprintf("%.0f B", counters),
		fmt.Sprintf("%.0f B", own), fmt.Sprintf("%.2f", keys), fmt.Sprintf("%d (%d)", held.counters, newCounters), fmt.Sprint(len(left)))
	examples := ""
	if len(left) > 0 {
		examples = fmt.Sprintf(" (for example %s)", "`"+strings.Join(left[:min(3, len(left))], "`, `")+"`")
	}
	shows := fmt.Sprintf("%d `/v1` locks are taken with no owner and a 30 min TTL, half on each replica: Redis's used_memory "+
		"grows by %.0f bytes per lock. Of these, %.0f are in streams (the events log, which is capped) and %.0f in the %d fence "+
		"counters the grants created (one per Redis Cluster slot in use, at most 16,384, shared by every name in the slot and "+
		"never deleted), both fixed costs rather than per lock, which leaves %.0f bytes per held lock (target ≤ 200: %s) in "+
		"%.2f keys. Once every one is released, a SCAN finds %d keys whose name contains a released lock's name%s (target 0: %s).",
		n, perLock, streams, counters, newCounters, own, verdict(own <= 200), keys, len(left), examples, verdict(len(left) == 0))
	return section{title: "8. Redis memory per lock", tables: []*table{t}, shows: shows}, nil
}

// memorySnapshot is what Redis holds: used_memory, DBSIZE and the bytes of
// its streams.
// Shared keys (the streams, and the fence counters, one per Redis Cluster
// slot in use) are measured apart: their number is bounded, so they are a
// fixed cost rather than one per lock.
type memorySnapshot struct{ used, keys, streams, counters, counterBytes int64 }

func redisMemory(ctx context.Context, rdb *redis.Client) (memorySnapshot, error) {
	var s memorySnapshot
	var err error
	if s.used, err = infoField(ctx, rdb, "memory", "used_memory"); err != nil {
		return s, err
	}
	if s.keys, err = rdb.DBSize(ctx).Result(); err != nil {
		return s, err
	}
	counters, err := keysContaining(ctx, rdb, "lockd:fence:")
	if err != nil {
		return s, err
	}
	s.counters = int64(len(counters))
	pipe := rdb.Pipeline()
	for _, k := range counters {
		pipe.MemoryUsage(ctx, k)
	}
	if len(counters) > 0 {
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			return s, err
		}
		for _, c := range cmds {
			s.counterBytes += c.(*redis.IntCmd).Val()
		}
	}
	var cursor uint64
	for {
		keys, next, err := rdb.ScanType(ctx, cursor, "*", 1000, "stream").Result()
		if err != nil {
			return s, err
		}
		for _, k := range keys {
			// SAMPLES 0 walks the whole stream: exact, not estimated.
			n, err := rdb.MemoryUsage(ctx, k, 0).Result()
			if err != nil && err != redis.Nil {
				return s, err
			}
			s.streams += n
		}
		if cursor = next; cursor == 0 {
			return s, nil
		}
	}
}

// keysContaining lists the keys whose name contains s.
func keysContaining(ctx context.Context, rdb *redis.Client, s string) ([]string, error) {
	var out []string
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, "*"+s+"*", 1000).Result()
		if err != nil {
			return nil, err
		}
		out = append(out, keys...)
		if cursor = next; cursor == 0 {
			return out, nil
		}
	}
}
