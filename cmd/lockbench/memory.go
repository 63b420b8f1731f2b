package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
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

	before, err := redisMemory(ctx, rdb)
	if err != nil {
		return section{}, err
	}
	tokens := make([]string, n)
	err = forEach(ctx, n, conc, func(i int) error {
		// No owner: the acquire body has none.
		l, err := a.acquire(ctx, c.urls[i%2], name(i), 30*time.Minute, 0)
		tokens[i] = l.Token
		return err
	})
	if err != nil {
		return section{}, err
	}
	held, err := redisMemory(ctx, rdb)
	if err != nil {
		return section{}, err
	}
	err = forEach(ctx, n, conc, func(i int) error { return a.release(ctx, c.urls[i%2], name(i), tokens[i]) })
	if err != nil {
		return section{}, err
	}
	left, err := keysContaining(ctx, rdb, prefix)
	if err != nil {
		return section{}, err
	}

	perLock := float64(held.used-before.used) / float64(n)
	streams := float64(held.streams-before.streams) / float64(n)
	keys := float64(held.keys-before.keys) / float64(n)
	t := &table{header: []string{"held locks", "Redis used_memory per lock", "of which streams", "per lock without streams",
		"keys per held lock", "keys left naming a released lock"}}
	t.add(fmt.Sprint(n), fmt.Sprintf("%.0f B", perLock), fmt.Sprintf("%.0f B", streams), fmt.Sprintf("%.0f B", perLock-streams),
		fmt.Sprintf("%.2f", keys), fmt.Sprint(len(left)))
	examples := ""
	if len(left) > 0 {
		examples = fmt.Sprintf(" (for example %s)", "`"+strings.Join(left[:min(3, len(left))], "`, `")+"`")
	}
	shows := fmt.Sprintf("%d `/v1` locks are taken with no owner and a 30 min TTL, half on each replica: Redis's used_memory "+
		"grows by %.0f bytes per lock, %.0f of them in streams (the events log, which is capped, so it is a fixed cost and not one "+
		"per lock), which leaves %.0f bytes per held lock (target ≤ 200: %s); DBSIZE grows by %.2f keys per held lock. "+
		"Once every one is released, a SCAN finds %d keys whose name contains a released lock's name%s (target 0: %s).",
		n, perLock, streams, perLock-streams, verdict(perLock-streams <= 200), keys, len(left), examples, verdict(len(left) == 0))
	return section{title: "7. Redis memory per lock", tables: []*table{t}, shows: shows}, nil
}

// memorySnapshot is what Redis holds: used_memory, DBSIZE and the bytes of
// its streams.
type memorySnapshot struct{ used, keys, streams int64 }

func redisMemory(ctx context.Context, rdb *redis.Client) (memorySnapshot, error) {
	var s memorySnapshot
	var err error
	if s.used, err = infoField(ctx, rdb, "memory", "used_memory"); err != nil {
		return s, err
	}
	if s.keys, err = rdb.DBSize(ctx).Result(); err != nil {
		return s, err
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
