package safety_test

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/go-distributed-lock/go-distributed-lock/internal/buildtest"
	"github.com/go-distributed-lock/go-distributed-lock/internal/redistest"
	"github.com/go-distributed-lock/go-distributed-lock/internal/safety"
	"github.com/go-distributed-lock/go-distributed-lock/internal/safety/check"
)

var full = flag.Bool("safety.full", os.Getenv("SAFETY_FULL") != "", "run every scenario (minutes), not the make test subset")

// Persistence arguments. Without persistence a restarted node is empty.
var (
	noPersistence = []string{"--save", ""}
	fsyncAlways   = []string{"--save", "", "--appendonly", "yes", "--appendfsync", "always"}
)

// dataLoss is what the checkers may find when Redis lost live leases:
// another client can be granted a lock whose holder still runs, a permit
// beyond the limit, a shared hold beside an exclusive one; a lock-delay in
// force and a fair queue's order are lost with the record that kept them.
// Fences must still rise and the store must still refuse every stale
// write.
var dataLoss = []string{check.CheckerMutualExclusion, check.CheckerLinearizable,
	check.CheckerSemaphore, check.CheckerShared, check.CheckerFair, check.CheckerLockDelay}

// queueStall is what fair queues may show when the waiters' replicas cannot
// renew their places for about a second (queueLiveness in internal/lock):
// Redis paused, or one lockd cut off from it. Their places lapse, and a
// request sent after they joined can be granted first; a waiter queued
// again begins its wait again (queued_ms counts from there), but the
// checker cannot see that a place lapsed while its waiter still waited.
var queueStall = []string{check.CheckerFair}

// The workloads of issue 16 (doc/KINDS.md). Quorum mode refuses them (400
// unsupported), so their scenarios run on a single Redis (S1), and one on
// Sentinel for a failover.
var (
	// hot-1 (and every other private name) waits fairly: a release or an
	// expiry then hands permits to the queue's head in the same script.
	semaphores = safety.Workload{Name: "semaphores limit 2", Uses: []safety.Use{{Limit: 2}, {Limit: 2, Fair: true}}}
	// Readers mostly: a writer then often waits behind readers, and its
	// place in the queue must stop new shared grants.
	sharedMix = safety.Workload{Name: "shared and exclusive", Uses: []safety.Use{{Shared: 0.7}}}
	fairWaits = safety.Workload{Name: "fair", Uses: []safety.Use{{Fair: true}}}
	// One lease in 30 is left to expire: each closes its name for
	// TTL + 1 s, so the hot names stay mostly open.
	lockDelay = safety.Workload{Name: "lock-delay 1s", Uses: []safety.Use{{LockDelay: time.Second, Abandon: 1.0 / 30}}}
	// One hot name of each: a semaphore, a shared/exclusive lock, and a
	// fair lock with a lock-delay whose holders sometimes die.
	mixedKinds = safety.Workload{Name: "mixed kinds", Uses: []safety.Use{
		{Limit: 2}, {Shared: 0.7}, {Fair: true, LockDelay: time.Second, Abandon: 1.0 / 30}}}
)

// scenarios is the suite. The S1 key deletion and the unfenced store must
// show violations, the R3 key deletion and the data losses may show
// overlapping grants (never a fence that goes back or an accepted stale
// write); everything else must show none.
func scenarios() []safety.Scenario {
	all := []safety.Scenario{
		{Name: "baseline", Mode: safety.S1, Redis: noPersistence},
		{Name: "baseline", Mode: safety.R3, Redis: noPersistence},

		{Name: "redis kill, restart at once, no persistence", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.KillRedis(0), Short: true},
		{Name: "redis kill, restart at once, fsync always", Mode: safety.R3, Redis: fsyncAlways,
			Fault: safety.KillRedis(0)},
		{Name: "redis kill, restart after TTL+1s", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.KillRedis(safety.TTL + time.Second)},
		{Name: "redis kill, restart at once, fsync always", Mode: safety.S1, Redis: fsyncAlways,
			Fault: safety.KillRedis(0)},

		// Data lost on a majority of nodes or on all of them: lockd keeps
		// every node that came back empty out of quorums for KeepOut, so
		// no lock is granted until every lease from before the loss has
		// ended, and then fences go on above the old ones (their clock
		// floor) though no node has the counters to copy.
		{Name: "all redis kill -9, restart empty", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.KillNodes(0, 0, 1, 2), Liveness: safety.KeepOut + safety.TTL + 2*time.Second, Allow: dataLoss},
		{Name: "two of three redis kill -9, restart empty", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.KillNodes(0, 0, 1), Liveness: safety.KeepOut + safety.TTL + 2*time.Second, Allow: dataLoss},
		// One node decides alone and does not wait: leases live at the
		// loss are gone at once, so overlaps are allowed, but fences still
		// rise above every earlier one.
		{Name: "redis kill, restart at once, no persistence", Mode: safety.S1, Redis: noPersistence,
			Fault: safety.KillRedis(0), Liveness: safety.TTL + 2*time.Second, Allow: dataLoss, Short: true},

		{Name: "redis SIGSTOP 2×TTL", Mode: safety.R3, Redis: noPersistence, Fault: safety.PauseRedis(2 * safety.TTL)},
		{Name: "redis SIGSTOP 2×TTL", Mode: safety.S1, Redis: noPersistence, Fault: safety.PauseRedis(2 * safety.TTL)},
		{Name: "redis SIGSTOP 5s", Mode: safety.R3, Redis: noPersistence, Fault: safety.PauseRedis(5 * time.Second)},

		{Name: "latency 150±50ms", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.Toxic("latency", "downstream", `{"latency":150,"jitter":50}`, 3*time.Second, false)},
		{Name: "latency 150±50ms", Mode: safety.S1, Redis: noPersistence,
			Fault: safety.Toxic("latency", "downstream", `{"latency":150,"jitter":50}`, 3*time.Second, false)},
		{Name: "blackhole (timeout toxic), one instance", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.Toxic("timeout", "upstream", `{"timeout":0}`, 3*time.Second, true)},
		{Name: "blackhole (timeout toxic), one instance", Mode: safety.S1, Redis: noPersistence,
			Fault: safety.Toxic("timeout", "upstream", `{"timeout":0}`, 3*time.Second, true)},
		{Name: "reset_peer", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.Toxic("reset_peer", "upstream", `{"timeout":0}`, 3*time.Second, false)},
		{Name: "reset_peer", Mode: safety.S1, Redis: noPersistence,
			Fault: safety.Toxic("reset_peer", "upstream", `{"timeout":0}`, 3*time.Second, false)},

		// A master killed mid-traffic, and a replica promoted by the
		// cluster or by the sentinels. make test runs the cluster without
		// MIN_REPLICAS: its recovery (about 3 s) is the furthest from the
		// 5 s bound.
		short(failover(safety.C3, 0)),
		failover(safety.C3, 1),
		failover(safety.SN, 0),
		failover(safety.SN, 1),

		{Name: "lockd kill -9, restart after 2s", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.KillLockd(2 * time.Second), Short: true},
		{Name: "lockd kill -9, restart after 2s", Mode: safety.S1, Redis: noPersistence,
			Fault: safety.KillLockd(2 * time.Second)},

		{Name: "holder paused 3×TTL", Mode: safety.S1, Redis: noPersistence, Fault: safety.PauseHolder(3 * safety.TTL)},
		{Name: "holder paused 3×TTL", Mode: safety.R3, Redis: noPersistence, Fault: safety.PauseHolder(3 * safety.TTL)},
		{Name: "holder paused 3×TTL, store unfenced (expected to fail)", Mode: safety.S1, Redis: noPersistence,
			Fault: safety.PauseHolder(3 * safety.TTL), Unfenced: true,
			// The late holder's stale writes must be seen; when one of
			// them was an increment, the counter checker sees it lost too.
			Expect: []string{check.CheckerStore}, Allow: []string{check.CheckerCounter}, Short: true},

		// A key lost on one node of three (what a clock jump there does)
		// takes a lease that lives on exactly two nodes down to one, and
		// another client can then win a majority: Redlock cannot prevent
		// that (Kleppmann's first counter-example), and under contention
		// many leases live on a bare majority (the third node still held
		// a racing attempt's key). The fence must still keep every stale
		// write out: the store and counter checkers must find nothing.
		{Name: "lock keys deleted on one node", Mode: safety.R3, Redis: noPersistence,
			Fault: safety.DeleteKeys(3 * time.Second),
			Allow: []string{check.CheckerMutualExclusion, check.CheckerLinearizable}},
		{Name: "lock keys deleted on the only node (expected to fail)", Mode: safety.S1, Redis: noPersistence,
			Fault:  safety.DeleteKeys(3 * time.Second),
			Expect: []string{check.CheckerMutualExclusion, check.CheckerLinearizable}, Short: true},
	}
	return append(all, kindScenarios()...)
}

// kindScenarios puts the workloads of issue 16 under the faults above.
func kindScenarios() []safety.Scenario {
	baseline := safety.Scenario{Name: "baseline", Mode: safety.S1, Redis: noPersistence}
	pause := safety.Scenario{Name: "redis SIGSTOP 2×TTL", Mode: safety.S1, Redis: noPersistence,
		Fault: safety.PauseRedis(2 * safety.TTL)}
	lockdKill := safety.Scenario{Name: "lockd kill -9, restart after 2s", Mode: safety.S1, Redis: noPersistence,
		Fault: safety.KillLockd(2 * time.Second)}
	latency := safety.Scenario{Name: "latency 150±50ms", Mode: safety.S1, Redis: noPersistence,
		Fault: safety.Toxic("latency", "downstream", `{"latency":150,"jitter":50}`, 3*time.Second, false)}
	blackhole := safety.Scenario{Name: "blackhole (timeout toxic), one instance", Mode: safety.S1, Redis: noPersistence,
		Fault: safety.Toxic("timeout", "upstream", `{"timeout":0}`, 3*time.Second, true)}
	// The record of a name (holders, queue, delay) survives a restart
	// whole with fsync always, and is lost without persistence.
	durable := safety.Scenario{Name: "redis kill, restart at once, fsync always", Mode: safety.S1, Redis: fsyncAlways,
		Fault: safety.KillRedis(0)}
	lost := safety.Scenario{Name: "redis kill, restart at once, no persistence", Mode: safety.S1, Redis: noPersistence,
		Fault: safety.KillRedis(0), Liveness: safety.TTL + 2*time.Second, Allow: dataLoss}
	// A holder that dies without releasing is what a lock-delay is for.
	holderPaused := safety.Scenario{Name: "holder paused 3×TTL", Mode: safety.S1, Redis: noPersistence,
		Fault: safety.PauseHolder(3 * safety.TTL)}

	with := func(w safety.Workload, sc safety.Scenario, allow ...string) safety.Scenario {
		sc.Workload = w
		sc.Allow = append(slices.Clone(sc.Allow), allow...)
		return sc
	}
	return []safety.Scenario{
		with(semaphores, baseline),
		with(semaphores, pause),
		with(semaphores, lockdKill),
		with(semaphores, durable),

		with(sharedMix, baseline),
		with(sharedMix, pause),
		with(sharedMix, lockdKill),
		with(sharedMix, latency),

		with(fairWaits, baseline),
		with(fairWaits, pause, queueStall...),
		with(fairWaits, lockdKill),
		with(fairWaits, latency),
		with(fairWaits, blackhole, queueStall...),

		with(lockDelay, baseline),
		with(lockDelay, pause),
		with(lockDelay, lockdKill),
		with(lockDelay, holderPaused),

		// make test's one run of the richer grants, about 13 s: all four
		// checkers have grants to judge.
		short(with(mixedKinds, baseline)),
		with(mixedKinds, lockdKill),
		with(mixedKinds, lost),
		// With MIN_REPLICAS a grant from a fair queue, made by another
		// connection's script, is answered only once a replica has it.
		with(mixedKinds, failover(safety.SN, 1)),
	}
}

// failover is the scenario of a master killed with SIGKILL in mode (C3: the
// master of hot-0's shard, one of three; SN: the only master) and left
// down, with lockd's REDIS_MIN_REPLICAS at minReplicas. Replication is
// asynchronous: a grant the master answered but had not yet sent on is lost
// with it, and the promoted replica can grant the lock again while its
// holder still runs. Without MIN_REPLICAS that is allowed, as for any data
// loss, but fences must still rise (their clock floor) and the store refuse
// every stale write. With it, a grant is answered only once a replica has
// it, and the replica promoted is the one furthest along, so no lease may be
// lost. Either way every name must be granted again within FailoverAfter
// (the failover starts), a TTL (a lease from before the kill runs out) and
// 2 s.
func failover(mode safety.Mode, minReplicas int) safety.Scenario {
	sc := safety.Scenario{Name: "master kill -9, failover", Mode: mode, Fault: safety.KillMaster(),
		MinReplicas: minReplicas, Liveness: safety.FailoverAfter + safety.TTL + 2*time.Second, EveryName: true}
	if minReplicas > 0 {
		sc.Name += fmt.Sprintf(", MIN_REPLICAS=%d", minReplicas)
	} else {
		sc.Allow = dataLoss
	}
	return sc
}

// short marks sc to run in make test too.
func short(sc safety.Scenario) safety.Scenario {
	sc.Short = true
	return sc
}

// TestSafety runs the fault-injection suite: the make test subset by
// default, every scenario with -safety.full. It prints the summary table
// and writes it to $SAFETY_REPORT when that is set.
func TestSafety(t *testing.T) {
	redistest.Require(t)
	bin := buildtest.Binary(t, buildtest.Module+"/cmd/lockd")
	timing := safety.Timing{Warmup: 2 * time.Second, Recovery: 2 * time.Second}
	if *full {
		timing = safety.Timing{Warmup: 5 * time.Second, Recovery: 5 * time.Second}
	}
	var rows []safety.Row
	for _, sc := range scenarios() {
		if !*full && !sc.Short {
			continue
		}
		t.Run(string(sc.Mode)+"/"+sc.FullName(), func(t *testing.T) {
			// A run that stops early (t.Fatal) still gets its line.
			row := safety.Row{Scenario: sc.FullName(), Mode: sc.Mode, Recovery: -1, Result: "FAIL (stopped early)"}
			defer func() { rows = append(rows, row) }()
			row = safety.Run(t, sc, bin, timing)
		})
	}
	table := safety.Table(rows)
	t.Logf("summary:\n%s", table)
	fmt.Print(table)
	if path := os.Getenv("SAFETY_REPORT"); path != "" {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// TestSafetyClientProcess is the body of the client process TestSafety
// starts; on its own it skips.
func TestSafetyClientProcess(t *testing.T) {
	raw := os.Getenv(safety.ClientEnv)
	if raw == "" {
		t.Skip("runs only as a client process of TestSafety")
	}
	var cfg safety.ClientConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	pace, err := time.ParseDuration(os.Getenv("SAFETY_CLIENT_PACE"))
	if err != nil {
		t.Fatal(err)
	}
	safety.ServeClientProcess(cfg, pace, os.Stdin, os.Stdout)
}

func TestMain(m *testing.M) {
	code := m.Run()
	// Every process, proxy, server and client connection must be gone.
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
