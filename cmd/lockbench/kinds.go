package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// v1Locker takes name through /v1/{kind}/{name}/acquire with body, on the
// replica at base, and gives it back through release. group, when set,
// maps the cycle's name to the one taken.
func v1Locker(a *api, base, kind string, body map[string]any, group func(string) string) locker {
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		if group != nil {
			name = group(name)
		}
		l, err := a.acquireV1(ctx, base, kind, name, body)
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) error { return a.releaseV1(ctx, l) }, nil
	}
}

// sharedBy maps a cycle's name (cycleName: prefix.worker.cycle) to one
// name per size workers, so that each name has up to size holders at
// once and no more: a worker's cycles follow one another.
func sharedBy(size int) func(string) string {
	return func(name string) string {
		rest := name[:strings.LastIndexByte(name, '.')] // prefix.worker
		i := strings.LastIndexByte(rest, '.')
		var w int
		fmt.Sscan(rest[i+1:], &w)
		return fmt.Sprintf("%s.shared.%d", rest[:i], w/size)
	}
}

// semLimit is the semaphores' limit in kindsScenario.
const semLimit = 4

// kindRow is one row of kindsScenario's table.
type kindRow struct {
	name string
	lock func(base string) locker
}

// kindsScenario sets the cycle of a semaphore permit and of a fair
// waiting acquire against the plain lock cycle, at section 1's
// concurrency, nobody waiting for anybody: what the richer record and the
// queue cost on their own.
func kindsScenario(b *bench) (section, error) {
	const conc = 16
	a := newAPI(conc)
	defer a.close()
	const (
		rowLock     = "lock, no wait"
		rowWait     = "lock, wait 10s (wake-and-retry)"
		rowFair     = "lock, wait 10s, fair"
		rowSem      = "semaphore, limit 4, a fresh name each cycle"
		rowSemShare = "semaphore, limit 4, one name per 4 workers"
	)
	ttl := "10s"
	rows := []kindRow{
		{rowLock, func(base string) locker { return v1Locker(a, base, "locks", map[string]any{"ttl": ttl}, nil) }},
		{rowWait, func(base string) locker {
			return v1Locker(a, base, "locks", map[string]any{"ttl": ttl, "wait": "10s"}, nil)
		}},
		{rowFair, func(base string) locker {
			return v1Locker(a, base, "locks", map[string]any{"ttl": ttl, "wait": "10s", "fair": true}, nil)
		}},
		{rowSem, func(base string) locker {
			return v1Locker(a, base, "semaphores", map[string]any{"ttl": ttl, "limit": semLimit}, nil)
		}},
		{rowSemShare, func(base string) locker {
			return v1Locker(a, base, "semaphores", map[string]any{"ttl": ttl, "limit": semLimit}, sharedBy(semLimit))
		}},
	}
	c := b.single
	d := b.scaled(3 * time.Second)
	if b.smoke {
		d = 80 * time.Millisecond
	}
	cells := map[string]*cell{}
	for rep := range b.reps {
		for _, row := range rows {
			r, err := runCycles(b.ctx, c, conc, d, row.lock(c.urls[0]))
			if err != nil {
				return section{}, fmt.Errorf("%s: %w", row.name, err)
			}
			if cells[row.name] == nil {
				cells[row.name] = &cell{name: row.name, conc: conc}
			}
			cells[row.name].reps = append(cells[row.name].reps, r)
			b.logf("  rep %d %-44s %8.0f cycles/s", rep+1, row.name, r.opsPerSec)
		}
	}
	// Round trips, from outside lockd: one untimed run of each row on the
	// counted cluster.
	cc, err := b.counted()
	if err != nil {
		return section{}, err
	}
	trips := map[string]int64{}
	for _, row := range rows {
		r, err := runCycles(b.ctx, cc, conc, b.scaled(2*time.Second), row.lock(cc.urls[0]))
		if err != nil {
			return section{}, fmt.Errorf("%s, counted: %w", row.name, err)
		}
		trips[row.name] = r.per.sent
		b.logf("  counted %-44s %s round trips/cycle", row.name, thousandths(r.per.sent))
	}

	t := &table{header: []string{"acquire", "cycles/s", "× lock, no wait", "p50", "p99", "max",
		"Redis round trips/cycle", "Redis cmds/cycle", "lockd CPU/cycle", "Redis CPU/cycle"}}
	base := cells[rowLock].ops()
	tripsOK := true
	for _, row := range rows {
		ce := cells[row.name]
		l, u := ce.lat(), ce.cost()
		tripsOK = tripsOK && trips[row.name] <= 2005
		t.add(row.name, fmt.Sprintf("%.0f", ce.ops()), ratio(ce.ops(), base), ms(l.p50), ms(l.p99), ms(l.max),
			thousandths(trips[row.name]), thousandths(u.commands), us(u.serviceCPU), us(u.redisCPU))
	}
	lk, wt, fr, sm, ss := cells[rowLock], cells[rowWait], cells[rowFair], cells[rowSem], cells[rowSemShare]
	shows := fmt.Sprintf("`/v1` acquire + release cycles at concurrency %d (section 1's), on one replica, where nobody "+
		"waits for anybody: a fresh name each cycle, or for the last row one semaphore per %d workers, each worker's "+
		"cycles one after another, so that it has up to %d holders and is never full. A semaphore permit does %.0f "+
		"cycles/s, %.2f× the plain lock's %.0f, at %s Redis commands per cycle against %s and %s µs of Redis CPU against %s; "+
		"with up to %d holders in the record, %.0f cycles/s (%.2f×), %s commands and %s µs. "+
		"A fair waiting acquire that finds the name free does %.0f cycles/s against a plain waiting acquire's %.0f (%.2f×), "+
		"at %s round trips per cycle against %s, %s Redis commands against %s, and %s ms against %s at the median. "+
		"Every row makes one round trip per acquire and one per release (target: 2 per cycle, as a lock's: %s). "+
		"These acquires go through cmd/lockbench's own HTTP calls (`acquireV1`), not client/ as section 1's do, so "+
		"the lock row here, not section 1's, is the yardstick. Round trips come from a separate, untimed run of each "+
		"row on the counted cluster, as in section 1. Section 2 has fair waiting under contention; both feed "+
		"[Should fair waiting be the default?](#should-fair-waiting-be-the-default) at the end of this page.",
		conc, semLimit, semLimit, sm.ops(), sm.ops()/lk.ops(), lk.ops(), thousandths(sm.cost().commands),
		thousandths(lk.cost().commands), us(sm.cost().redisCPU), us(lk.cost().redisCPU),
		semLimit, ss.ops(), ss.ops()/lk.ops(), thousandths(ss.cost().commands), us(ss.cost().redisCPU),
		fr.ops(), wt.ops(), fr.ops()/wt.ops(), thousandths(trips[rowFair]), thousandths(trips[rowWait]),
		thousandths(fr.cost().commands), thousandths(wt.cost().commands), ms(fr.lat().p50), ms(wt.lat().p50), verdict(tripsOK))
	return section{title: "10. Semaphores and fair waiting without contention", tables: []*table{t}, shows: shows}, nil
}
