package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// spreadLocker takes each name on the next of the replicas at bases in
// turn, and gives it back there.
func spreadLocker(a *api, bases []string) locker {
	var ls []locker
	for _, base := range bases {
		ls = append(ls, lockdLocker(a, base))
	}
	var next atomic.Uint64
	return func(ctx context.Context, name string) (func(context.Context) error, error) {
		return ls[next.Add(1)%uint64(len(ls))](ctx, name)
	}
}

// startClusters starts a cluster for each of opts side by side, with its
// files in dir/name-N: most of a topology's start is waiting for its
// nodes to gossip. On an error it stops those that started.
func startClusters(b *bench, name string, opts []clusterOptions) ([]*cluster, error) {
	out := make([]*cluster, len(opts))
	errs := make([]error, len(opts))
	var wg sync.WaitGroup
	for i, o := range opts {
		wg.Go(func() {
			dir := filepath.Join(b.dir, fmt.Sprintf("%s-%d", name, i+1))
			out[i], errs[i] = startCluster(b.ctx, b.lockd, dir, o)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for i, c := range out {
			if errs[i] == nil {
				c.stop()
			}
		}
		return nil, err
	}
	return out, nil
}

// redisMode is one row of the shards scenario: a way to run Redis under
// two lockd replicas.
type redisMode struct {
	name    string
	short   string   // in a sentence
	c       *cluster // timed
	counted *cluster // the same shape behind proxies, for round trips
	cell    cell
	// per shard (each node of c.redis), over the repetitions
	names     []int             // names taken, all repetitions together
	cmds      [][]float64       // commands per cycle, one per repetition
	cpu       [][]time.Duration // Redis CPU per cycle, one per repetition
	byCommand map[string][]float64
	masterCPU []time.Duration // all masters' Redis CPU per cycle, one per repetition
	idle      []time.Duration // each master's CPU per second while nobody takes a lock
	trips     trips
	idleTrips float64 // round trips/s through the counted copy's proxies while idle
	idleCalls string  // the commands its masters ran meanwhile, per second
	slots     []string
}

// shardsScenario runs the uncontended cycle of section 1 at concurrency 16,
// through both lockd replicas in turn, over one Redis, over Sentinel (a
// master with two replicas, three sentinels) and over a Redis Cluster of
// three masters, with and without a replica each, interleaved. From each
// master's own INFO it shows what every shard costs per cycle it served,
// the names' slots telling which master served which cycle.
func shardsScenario(b *bench) (section, error) {
	modes := []*redisMode{
		{name: "1 node", short: "one node", c: b.single},
		{name: "Sentinel: master + 2 replicas, 3 sentinels", short: "Sentinel"},
		{name: "Cluster: 3 masters", short: "the cluster"},
		{name: "Cluster: 3 masters + 1 replica each", short: "the cluster with replicas"},
	}
	// The timed topologies, then copies behind proxies for the round
	// trips, all started at once: most of a start is waiting for gossip.
	opts := []clusterOptions{{mode: modeSentinel}, {mode: modeCluster, replicas: -1}, {mode: modeCluster, replicas: 1},
		{mode: modeSentinel, counted: true}, {mode: modeCluster, counted: true}}
	if b.smoke {
		// The replicas' row measures only what they cost: not worth its
		// start in a run that checks that the tool works.
		modes, opts = modes[:3], slices.Delete(opts, 2, 3)
	}
	started, err := startClusters(b, "shards", opts)
	if err != nil {
		return section{}, err
	}
	defer func() {
		for _, c := range started {
			c.stop()
		}
	}()
	for i, m := range modes[1:] {
		m.c = started[i]
	}
	copies := started[len(modes)-1:]
	a := newAPI(16)
	defer a.close()
	for _, m := range modes {
		m.cell.name = m.name
		if m.slots, err = m.c.slotRanges(b.ctx); err != nil {
			return section{}, fmt.Errorf("%s: %w", m.name, err)
		}
		m.names = make([]int, len(m.c.redis))
		m.cmds, m.cpu = make([][]float64, len(m.c.redis)), make([][]time.Duration, len(m.c.redis))
		m.byCommand = map[string][]float64{}
	}
	if err := idleCPU(b, modes); err != nil {
		return section{}, err
	}
	d := b.scaled(3 * time.Second)
	if b.smoke {
		d = 200 * time.Millisecond
	}
	for range b.reps {
		for _, m := range modes {
			r, err := runCycles(b.ctx, m.c, 16, d, spreadLocker(a, m.c.urls))
			if err != nil {
				return section{}, fmt.Errorf("%s: %w", m.name, err)
			}
			m.cell.reps = append(m.cell.reps, r)
			if err := m.addShares(b, r); err != nil {
				return section{}, fmt.Errorf("%s: %w", m.name, err)
			}
			b.logf("  %-44s %8.0f ops/s", m.name, r.opsPerSec)
		}
	}
	if err := countModes(b, a, modes, copies); err != nil {
		return section{}, err
	}
	return shardsSection(b, modes), nil
}

// idleCPU measures each master's CPU while nobody takes a lock: what it
// spends whatever the load (its cron, a cluster's gossip, the replicas
// and sentinels it answers, lockd's own background reads).
func idleCPU(b *bench, modes []*redisMode) error {
	d := time.Second
	if b.smoke {
		d = 100 * time.Millisecond
	}
	before := make([]usage, len(modes))
	for i, m := range modes {
		u, err := m.c.usage(b.ctx)
		if err != nil {
			return err
		}
		before[i] = u
	}
	t0 := time.Now()
	time.Sleep(d)
	for i, m := range modes {
		u, err := m.c.usage(b.ctx)
		if err != nil {
			return err
		}
		took := time.Since(t0).Seconds()
		idle := u.sub(before[i]).nodes
		for _, s := range idle {
			m.idle = append(m.idle, time.Duration(float64(s.cpu)/took))
		}
		b.logf("  idle %-44s %s", m.name, callsPer(idle, took, "/s"))
	}
	return nil
}

// callsPer lists the commands of nodes, added up, divided by per (seconds
// or operations, as unit says).
func callsPer(nodes []nodeStat, per float64, unit string) string {
	calls := sum(nodes).calls
	var out []string
	for _, cmd := range slices.Sorted(maps.Keys(calls)) {
		out = append(out, fmt.Sprintf("`%s` %.3g%s", cmd, float64(calls[cmd])/per, unit))
	}
	return strings.Join(out, ", ")
}

// addShares adds one repetition's figures per shard: the cycles each
// master served (the names in its slots), and its commands and CPU per
// cycle from its own INFO.
func (m *redisMode) addShares(b *bench, r cycleResult) error {
	served := make([]int, len(m.c.redis))
	n := 0
	for name := range r.names {
		i, err := m.c.shardOf(b.ctx, name)
		if err != nil {
			return err
		}
		served[i]++
		n++
	}
	all := sum(r.total.nodes)
	calls := all.calls
	for i, s := range r.total.nodes {
		m.names[i] += served[i]
		if served[i] == 0 {
			continue
		}
		m.cmds[i] = append(m.cmds[i], float64(s.total())/float64(served[i]))
		m.cpu[i] = append(m.cpu[i], s.cpu/time.Duration(served[i]))
	}
	m.masterCPU = append(m.masterCPU, all.cpu/time.Duration(n))
	// A command missing from this repetition counts as 0 in its median.
	for cmd := range calls {
		if m.byCommand[cmd] == nil {
			m.byCommand[cmd] = make([]float64, len(m.cell.reps)-1)
		}
	}
	for cmd := range m.byCommand {
		m.byCommand[cmd] = append(m.byCommand[cmd], float64(calls[cmd])/float64(n))
	}
	return nil
}

// countModes counts the round trips of each mode on copies behind
// proxies: the single node's of section 1, and copies, Sentinel's then the
// cluster's. The replicas' row shares the row above's copy: lockd never
// talks to a replica (REDIS_MIN_REPLICAS is 0).
func countModes(b *bench, a *api, modes []*redisMode, copies []*cluster) error {
	single, err := b.counted()
	if err != nil {
		return err
	}
	modes[0].counted, modes[1].counted, modes[2].counted = single, copies[0], copies[1]
	n, idle := 1000, time.Second
	if b.smoke {
		n, idle = 100, 100*time.Millisecond
	}
	for i, m := range modes {
		if m.counted == nil {
			m.trips, m.idleTrips, m.idleCalls = modes[i-1].trips, modes[i-1].idleTrips, modes[i-1].idleCalls
			continue
		}
		before, err := m.counted.usage(b.ctx)
		if err != nil {
			return err
		}
		m.idleTrips = idleTrips(m.counted, idle)
		after, err := m.counted.usage(b.ctx)
		if err != nil {
			return err
		}
		m.idleCalls = callsPer(after.sub(before).nodes, idle.Seconds(), "/s")
		b.logf("  idle, counted: %-36s %.1f round trips/s; %s", m.name, m.idleTrips, m.idleCalls)
		if m.trips, err = countTrips(b.ctx, m.counted, spreadLocker(a, m.counted.urls), n, 16); err != nil {
			return fmt.Errorf("counting %s: %w", m.name, err)
		}
		b.logf("  counted: %-44s %s", m.name, callsPer([]nodeStat{{calls: m.trips.calls}}, float64(2*n), " per operation"))
		b.logf("  round trips %-44s acquire %.2f release %.2f", m.name, m.trips.acquire, m.trips.release)
	}
	return nil
}

// idleTrips is the round trips per second c's proxies count over d while
// nobody takes a lock.
func idleTrips(c *cluster, d time.Duration) float64 {
	before := c.proxyTrips()
	time.Sleep(d)
	return float64(c.proxyTrips()-before) / d.Seconds()
}

// sameCmds is how far a count of commands per cycle may be from another
// and still be equal: connections opened and background reads (a
// cluster's CLUSTER SLOTS every second) move it by a few hundredths.
const sameCmds = 0.05

func shardsSection(b *bench, modes []*redisMode) section {
	one, sentinel, sharded := modes[0], modes[1], modes[2]
	t := &table{header: []string{"Redis", "cycles/s", "× 1 node", "p50", "p99", "max", "round trips/acquire", "round trips/release",
		"Redis cmds/cycle (all masters)", "lockd CPU/cycle", "Redis CPU/cycle (all masters)", "replicas' and sentinels' CPU/cycle"}}
	for _, m := range modes {
		l, u := m.cell.lat(), m.cell.cost()
		standby := us(u.standbyCPU)
		if len(m.c.standby) == 0 {
			standby = "–"
		}
		t.add(m.name, fmt.Sprintf("%.0f", m.cell.ops()), ratio(m.cell.ops(), one.cell.ops()), ms(l.p50), ms(l.p99), ms(l.max),
			fmt.Sprintf("%.2f", m.trips.acquire), fmt.Sprintf("%.2f", m.trips.release),
			thousandths(u.commands), us(u.serviceCPU), us(median(m.masterCPU)), standby)
	}

	st := &table{
		title: "Each master on its own. The cycles it served are the benchmark's names in its slots (all repetitions together); " +
			"its commands and CPU per cycle come from its own INFO commandstats and INFO cpu, and its idle CPU from the same " +
			"over a second in which nobody took a lock:",
		header: []string{"Redis", "shard", "slots", "names", "share", "Redis cmds/cycle", "Redis CPU/cycle", "idle CPU (ms/s)"},
	}
	singleCmds := median(one.cmds[0])
	var worst float64 // the largest gap between a shard's commands per cycle and the single node's
	for _, m := range modes {
		for i := range m.c.redis {
			cmds, cpu := "–", "–"
			if len(m.cmds[i]) > 0 {
				cmds, cpu = fmt.Sprintf("%.2f", median(m.cmds[i])), us(median(m.cpu[i]))
				if m != one {
					worst = max(worst, math.Abs(median(m.cmds[i])-singleCmds))
				}
			}
			st.add(m.name, fmt.Sprint(i+1), m.slots[i], fmt.Sprint(m.names[i]), share(m.names[i], m.names), cmds, cpu,
				fmt.Sprintf("%.1f", float64(m.idle[i])/float64(time.Millisecond)))
		}
	}

	ct := &table{title: fmt.Sprintf("Redis commands per cycle, by command, over all masters (those under %.2f per cycle everywhere are left out):", sameCmds),
		header: []string{"command"}}
	for _, m := range modes {
		ct.header = append(ct.header, m.name)
	}
	cmds := map[string]bool{}
	for _, m := range modes {
		for cmd, v := range m.byCommand {
			if median(v) >= sameCmds {
				cmds[cmd] = true
			}
		}
	}
	var differs []string // how the commands per cycle differ from the single node's
	for _, cmd := range slices.Sorted(maps.Keys(cmds)) {
		row := []string{"`" + cmd + "`"}
		var gaps []string
		for _, m := range modes {
			v := median(m.byCommand[cmd])
			row = append(row, fmt.Sprintf("%.2f", v))
			if d := v - median(one.byCommand[cmd]); math.Abs(d) >= sameCmds {
				gaps = append(gaps, fmt.Sprintf("%+.2f in %s", d, m.short))
			}
		}
		ct.add(row...)
		if len(gaps) > 0 {
			differs = append(differs, fmt.Sprintf("`%s` %s", cmd, strings.Join(gaps, ", ")))
		}
	}

	same := worst < sameCmds
	match := fmt.Sprintf("match it (target: equal, to within %.2f: met)", sameCmds)
	if !same {
		match = fmt.Sprintf("differ from it by up to %.2f (target: equal, to within %.2f: **missed**); by command: %s",
			worst, sameCmds, strings.Join(differs, "; "))
	}
	shows := fmt.Sprintf("The uncontended cycle of section 1 at concurrency 16, taking each name on the two lockd replicas in turn, "+
		"interleaved over one Redis, over Sentinel (lockd asks the sentinels for the master: `REDIS_SENTINEL_ADDRS`, "+
		"`REDIS_MASTER_NAME`) and over a Redis Cluster of three masters (`REDIS_CLUSTER_ADDRS`), where go-redis sends each "+
		"operation's one EVALSHA to the master of its name's slot. Sentinel does %.0f cycles/s (%.2f× one node) and the "+
		"cluster %.0f (%.2f×), with %.2f and %.2f Redis round trips per acquire and %.2f and %.2f per release (one node: %.2f "+
		"and %.2f; target 1, once the idle rate below is taken out: %s). "+
		"Per shard, the cluster's masters run %s commands per cycle they served, where the single node runs %.2f: they %s. "+
		"Each master spends %s µs of Redis CPU per cycle it served, against the single node's %s, and %s ms per second "+
		"while idle, against the single node's %s. "+
		"The names spread over the masters by their slots: %s of them. "+
		"On these shared cores every process takes CPU from the others, so cycles/s cannot grow with the shards here: "+
		"CPU per cycle, the masters' and lockd's (%s µs per cycle over one node, %s over the cluster), is what carries over "+
		"to more machines (doc/SCALING.md). Sentinel's replicas and sentinels spend %s µs per cycle, and its master "+
		"%s µs where the single node's spends %s (it also streams every write to two replicas).%s "+
		"Round trips are counted as in section 1, by a proxy in front of each master, on copies that are never timed: "+
		"Sentinel's sentinels are made to monitor the proxy, so that it is the address they give lockd, and each cluster "+
		"master announces its proxy's port (`cluster-announce-port`), so that CLUSTER SLOTS sends lockd there. "+
		"While idle, those copies counted %.1f round trips/s through Sentinel's proxy (the sentinels talk to the "+
		"master through it too; the master ran %s) and %.1f through the cluster's (its masters ran %s), included "+
		"in the figures.",
		sentinel.cell.ops(), sentinel.cell.ops()/one.cell.ops(), sharded.cell.ops(), sharded.cell.ops()/one.cell.ops(),
		sentinel.trips.acquire, sharded.trips.acquire, sentinel.trips.release, sharded.trips.release, one.trips.acquire, one.trips.release,
		verdict(max(sentinel.netTrips(), sharded.netTrips()) < 1.005),
		listed(sharded.cmds, func(v []float64) string { return fmt.Sprintf("%.2f", median(v)) }), singleCmds, match,
		listed(sharded.cpu, func(v []time.Duration) string { return us(median(v)) }), us(median(one.cpu[0])),
		listed(sharded.idle, func(v time.Duration) string { return fmt.Sprintf("%.1f", float64(v)/float64(time.Millisecond)) }),
		fmt.Sprintf("%.1f", float64(one.idle[0])/float64(time.Millisecond)),
		listed(sharded.names, func(n int) string { return share(n, sharded.names) }),
		us(one.cell.cost().serviceCPU), us(sharded.cell.cost().serviceCPU),
		us(sentinel.cell.cost().standbyCPU), us(median(sentinel.cpu[0])), us(median(one.cpu[0])), replicasNote(modes), sentinel.idleTrips, orNothing(sentinel.idleCalls),
		sharded.idleTrips, orNothing(sharded.idleCalls))
	sec := section{title: "5. Sentinel and Redis Cluster", tables: []*table{t, st, ct}, shows: shows}
	sec.explained = !same && !b.smoke
	return sec
}

// netTrips is the larger of the round trips per acquire and per release,
// less what the idle rate adds over the time they took.
func (m *redisMode) netTrips() float64 {
	return max(m.trips.acquire, m.trips.release) - m.idleTrips/m.trips.opsPerSec
}

func orNothing(calls string) string {
	if calls == "" {
		return "no command"
	}
	return calls
}

// share is n as a percentage of the sum of all.
func share(n int, all []int) string {
	total := 0
	for _, v := range all {
		total += v
	}
	return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(max(total, 1)))
}

// replicasNote says what the cluster's replicas cost, when they ran.
func replicasNote(modes []*redisMode) string {
	if len(modes) < 4 {
		return ""
	}
	bare, r := modes[2], modes[3]
	return fmt.Sprintf(" The cluster's two rows differ only in its replicas, one per master: they spend %s µs per cycle, "+
		"each master spends %s µs per cycle it served instead of %s (it also streams every write to its replica), and the "+
		"cluster does %.0f cycles/s, %.2f× as many as without them; on two cores the replicas' CPU comes out of everyone's. "+
		"The row without replicas is the one set against the single node, which has none either; the row with them shows "+
		"the round trips counted without them, since lockd never talks to a replica (`REDIS_MIN_REPLICAS` is 0).",
		us(r.cell.cost().standbyCPU), listed(r.cpu, func(v []time.Duration) string { return us(median(v)) }),
		listed(bare.cpu, func(v []time.Duration) string { return us(median(v)) }), r.cell.ops(), r.cell.ops()/bare.cell.ops())
}

// listed prints one figure per shard as "a, b and c".
func listed[T any](per []T, format func(T) string) string {
	var parts []string
	for _, v := range per {
		parts = append(parts, format(v))
	}
	if len(parts) < 2 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
